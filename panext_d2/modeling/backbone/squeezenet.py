"""SqueezeNet (Iandola et al. 2016) as a detectron2 backbone (Kolhatkar (2020) §2.3.3, Table 2.4; §4.2).

Two versions, both without the classifier (``conv10`` + global pooling, removed for
segmentation as Kolhatkar (2020) §4.2.1 prescribes):

* ``"v1.0"``: Table 2.4 (7x7 ``conv1`` to 96 channels; pools after conv1, fire4, fire8);
* ``"v1.1"``: the SqueezeNet v1.1 of the official repository and torchvision (3x3 ``conv1`` to
  64 channels; pools after conv1, fire3, fire5). The default: Table 4.2's counts match it
  (SqzNet-Base 732 243 = 722 496 feature parameters + a 512 -> 19 scoring conv), see docs/DESIGN.md §3.

The names carry a "v" so that no YAML or command-line value of MODEL.SQUEEZENET.VERSION
parses as a number (yacs literal-evaluates values, turning ``1.1`` into a float).

Layers are named after Table 2.4: ``conv1``, ``pool1``, ``fire2`` ... ``fire9`` and
``pool<k>`` for the max-pool that follows layer ``k``. Every layer can be an output:

=========  ============  ==============  ====================================================
stride     v1.0          v1.1            use
=========  ============  ==============  ====================================================
2          conv1 (96)    conv1 (64)
4          pool1 (96)    pool1 (64)      FCN-4s skip (the pooled map, as FCN's pool3 / pool4)
4          fire2-4       fire2-3 (128)
8          pool4 (256)   pool3 (128)     FCN-8s skip; v1.1's 128 channels give Table 4.2's
                                         SqzNet-FCN8 increment (8 227)
8          fire5-8       fire4-5 (256)
16         pool8 (512)   pool5 (256)
16         fire9 (512)   fire6-9 (512)   encoder output (``fire9``)
=========  ============  ==============  ====================================================

``output_stride`` 16 (the network's own) or, for the atrous segmenters of §4.2, 8 / 4: the
strided max-pools past that stride get stride 1 and the 3x3 expand convolutions of the fire
modules that follow are dilated by the skipped stride (DeepLab; the 3x3 stride-1 pools keep
rate 1 and padding 1, as DeepLab-v1's pool4 / pool5). ``last_atrous_rate`` multiplies the
dilation of ``fire9``'s 3x3 expand convolution, the last spatial layer (§4.3's "atrous rate of
the last layer", 1, 3 or 5).

``padding``:

* ``"same"`` (default): TensorFlow ``SAME`` padding for ``conv1`` and the strided pools (the
  thesis trained in TensorFlow, §4.2.2), so the stride-s map has exactly ``ceil(H / s)`` cells
  and inputs padded to a multiple of the output stride give maps that line up with the FCN
  heads' ×2 upsampling steps;
* ``"torchvision"``: no padding in ``conv1``, ceil-mode pools: exactly torchvision's
  ``squeezenet1_0/1_1().features`` (maps one or more cells smaller), used to check the
  weight conversion (:func:`convert_torchvision_squeezenet`).

Parameter names (``conv1.weight``, ``fireK.squeeze.*``, ``fireK.expand1x1.*``,
``fireK.expand3x3.*``) equal torchvision's without the ``features.<index>`` prefix.
"""

import re
from typing import Dict, Mapping, Sequence

import torch
from timm.layers import pad_same
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

__all__ = [
    "SQUEEZENET_LAYERS",
    "Fire",
    "SqueezeNet",
    "build_squeezenet_backbone",
    "convert_torchvision_squeezenet",
    "squeezenet_layer_names",
]

# Per version: conv1 (kernel, depth), then the sequence of layers: ("pool",) or
# ("fire", squeeze, expand1x1, expand3x3). Table 2.4 for v1.0; the v1.1 release notes /
# torchvision squeezenet1_1 for v1.1.
SQUEEZENET_LAYERS = {
    "v1.0": (
        (7, 96),
        (
            ("pool",),
            ("fire", 16, 64, 64),
            ("fire", 16, 64, 64),
            ("fire", 32, 128, 128),
            ("pool",),
            ("fire", 32, 128, 128),
            ("fire", 48, 192, 192),
            ("fire", 48, 192, 192),
            ("fire", 64, 256, 256),
            ("pool",),
            ("fire", 64, 256, 256),
        ),
    ),
    "v1.1": (
        (3, 64),
        (
            ("pool",),
            ("fire", 16, 64, 64),
            ("fire", 16, 64, 64),
            ("pool",),
            ("fire", 32, 128, 128),
            ("fire", 32, 128, 128),
            ("pool",),
            ("fire", 48, 192, 192),
            ("fire", 48, 192, 192),
            ("fire", 64, 256, 256),
            ("fire", 64, 256, 256),
        ),
    ),
}
_PADDINGS = ("same", "torchvision")


def squeezenet_layer_names(version: str):
    """``("conv1", "pool1", "fire2", ...)`` in forward order, named after Table 2.4."""
    _, layers = SQUEEZENET_LAYERS[version]
    names, last = ["conv1"], 1
    for spec in layers:
        if spec[0] == "pool":
            names.append(f"pool{last}")
        else:
            last += 1
            names.append(f"fire{last}")
    return tuple(names)


class _SamePad(nn.Module):
    """Pads its input as TensorFlow's ``SAME`` would for a (kernel, stride) window (timm's
    ``pad_same``)."""

    def __init__(self, kernel: int, stride: int, value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x):
        return pad_same(x, [self.kernel] * 2, [self.stride] * 2, value=self.value)

    def extra_repr(self):
        return f"kernel={self.kernel}, stride={self.stride}, value={self.value}"


def _max_pool(stride: int, padding: str) -> nn.Module:
    """3x3 max-pool: stride 2 per Table 2.4, or stride 1 (size-preserving) under atrous."""
    if stride == 1:
        return nn.MaxPool2d(3, 1, padding=1)
    if padding == "same":
        return MaxPool2dSame(3, stride)  # TensorFlow SAME, padded with -inf
    return nn.MaxPool2d(3, stride, ceil_mode=True)


class Fire(nn.Module):
    """Fire module (§2.3.3): 1x1 squeeze + ReLU, then parallel 1x1 and 3x3 expand convs
    (each + ReLU) concatenated along channels. ``dilation`` applies to the 3x3 expand."""

    def __init__(
        self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, dilation: int = 1
    ):
        super().__init__()
        self.squeeze = Conv2d(in_channels, squeeze, 1, activation=nn.ReLU(inplace=True))
        self.expand1x1 = Conv2d(squeeze, expand1x1, 1, activation=nn.ReLU(inplace=True))
        self.expand3x3 = Conv2d(
            squeeze,
            expand3x3,
            3,
            padding=dilation,
            dilation=dilation,
            activation=nn.ReLU(inplace=True),
        )
        self.out_channels = expand1x1 + expand3x3

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], dim=1)


class SqueezeNet(Backbone):
    """SqueezeNet feature extractor (no classifier), see the module docstring."""

    def __init__(
        self,
        *,
        version: str = "v1.1",
        out_features: Sequence[str] = ("fire9",),
        output_stride: int = 16,
        last_atrous_rate: int = 1,
        padding: str = "same",
        in_channels: int = 3,
    ):
        super().__init__()
        if version not in SQUEEZENET_LAYERS:
            raise ValueError(
                f"SqueezeNet version must be one of {sorted(SQUEEZENET_LAYERS)}, got {version!r}"
            )
        names = squeezenet_layer_names(version)
        unknown = [f for f in out_features if f not in names]
        if unknown or not out_features:
            raise ValueError(
                f"out_features {list(out_features)} must be among {names} (SqueezeNet {version})"
            )
        if output_stride not in (4, 8, 16):
            raise ValueError(f"output_stride must be 4, 8 or 16, got {output_stride}")
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        if last_atrous_rate < 1:
            raise ValueError(f"last_atrous_rate must be >= 1, got {last_atrous_rate}")

        (kernel, depth), layers = SQUEEZENET_LAYERS[version]
        num_layers = max(names.index(f) for f in out_features) + 1
        self._layer_names = names[:num_layers]
        self._output_stride = output_stride
        self.version = version
        self.dilations: Dict[str, int] = {}

        # conv1's padding is a separate, parameter-free module so that parameter names do not
        # depend on ``padding``.
        self.pad1 = _SamePad(kernel, 2) if padding == "same" else nn.Identity()
        self.conv1 = Conv2d(in_channels, depth, kernel, stride=2, activation=nn.ReLU(inplace=True))
        channels, stride, rate = {"conv1": depth}, {"conv1": 2}, 1
        current, prev = 2, "conv1"
        for name, spec in zip(names[1:num_layers], layers):
            if spec[0] == "pool":
                pool_stride = 2 if current < output_stride else 1
                current *= pool_stride
                if pool_stride == 1:
                    rate *= 2
                layer = _max_pool(pool_stride, padding)
                channels[name] = channels[prev]
            else:
                layer_rate = rate * (last_atrous_rate if name == names[-1] else 1)
                layer = Fire(channels[prev], *spec[1:], dilation=layer_rate)
                self.dilations[name] = layer_rate
                channels[name] = layer.out_channels
            stride[name] = current
            self.add_module(name, layer)
            prev = name

        self._out_features = [n for n in names if n in out_features]
        self._out_feature_channels = {n: channels[n] for n in self._out_features}
        self._out_feature_strides = {n: stride[n] for n in self._out_features}
        self._init_weights()

    def _init_weights(self):
        # torchvision's SqueezeNet initialisation of the feature convolutions.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def size_divisibility(self) -> int:
        return self._output_stride

    def forward(self, x):
        outputs = {}
        x = self.pad1(x)
        for name in self._layer_names:
            x = getattr(self, name)(x)
            if name in self._out_feature_strides:
                outputs[name] = x
        return outputs


def convert_torchvision_squeezenet(
    state_dict: Mapping[str, torch.Tensor], version: str = "v1.1", prefix: str = ""
) -> Dict[str, torch.Tensor]:
    """Renames torchvision ``squeezenet1_0/1_1`` keys (``features.<i>.<rest>``) to ours
    (``<prefix><layer>.<rest>``, e.g. ``prefix="backbone."`` for a detectron2 checkpoint).

    The classifier (``classifier.*``) is dropped, as §4.2.1 removes it. The result loads
    into :class:`SqueezeNet` of the same version with either padding.
    """
    names = squeezenet_layer_names(version)
    out = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"features\.(\d+)\.(.+)", key)
        if match is None:
            continue
        index, rest = int(match.group(1)), match.group(2)
        # torchvision: features.0 = conv1, features.1 = its ReLU, then features.2, 3, ... are
        # our pool1, fire2, ... (names[1:]), one module each.
        name = "conv1" if index == 0 else names[index - 1]
        out[f"{prefix}{name}.{rest}"] = value
    return out


@BACKBONE_REGISTRY.register()
def build_squeezenet_backbone(cfg, input_shape: ShapeSpec):
    """SqueezeNet from ``cfg.MODEL.SQUEEZENET`` (panext_d2/config/squeezenet.py)."""
    c = cfg.MODEL.SQUEEZENET
    if c.VERSION not in SQUEEZENET_LAYERS:
        raise ValueError(
            f"MODEL.SQUEEZENET.VERSION={c.VERSION!r}; expected one of {sorted(SQUEEZENET_LAYERS)}"
        )
    return SqueezeNet(
        version=c.VERSION,
        out_features=c.OUT_FEATURES,
        output_stride=c.OUTPUT_STRIDE,
        last_atrous_rate=c.LAST_ATROUS_RATE,
        padding=c.PADDING,
        in_channels=input_shape.channels,
    )
