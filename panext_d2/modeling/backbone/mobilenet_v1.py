"""MobileNet-v1 (Howard et al. 2017) as a detectron2 backbone (Kolhatkar (2020) §2.3.4, Table 2.5).

Layers follow Table 2.5 and TensorFlow-slim's ``mobilenet_v1`` naming (``Conv2d_0`` ...
``Conv2d_13``): ``conv0`` is a full 3x3 stride-2 convolution to 32 channels, ``conv1`` ..
``conv13`` are depthwise-separable ("conv dw") layers. Every convolution is followed by BN
and an activation (§2.3.4: "both the depthwise and the pointwise convolutions are directly
followed by batch normalization and ReLU"); the activation is ReLU6 by default, as in the
TF Object Detection API implementation the thesis trained (§3.2) and in timm's
``mobilenetv1_100``, and ``"relu"`` is available (``MODEL.MOBILENET.ACTIVATION``).

Every ``convK`` can be an output; the interesting ones are

============  =======  ==============  ===========================================
name          stride   depth (x1.0)    used by
============  =======  ==============  ===========================================
``conv1``     2        64
``conv3``     4        128
``conv5``     8        256             FCN-8 skips (ISB, semantic segmentation)
``conv11``    16       512             SSD's first feature map; FCN-16 skips
``conv13``    32       1024            SSD's second feature map; encoder output
============  =======  ==============  ===========================================

Depths are ``max(int(depth * depth_multiplier), min_depth)`` (TF-slim's ``depth`` rule,
``min_depth`` 8). ``output_stride`` 16 or 8 turns the strided layers past that stride into
stride-1 layers and dilates the depthwise convolutions that follow, as TF-slim's
``mobilenet_v1_base(output_stride=...)`` and DeepLab do; ``last_atrous_rate`` multiplies
the dilation of ``conv13``'s depthwise convolution (Kolhatkar (2020) §4.3 studies rates 1, 3, 5 for
"the last layer"; multiplying, rather than replacing, the output-stride dilation is our
reading). Only the layers up to the deepest requested output are built.

Parameter names (``conv0.weight``, ``conv0.norm.*``, ``convK.depthwise.*``,
``convK.pointwise.*``) map one-to-one onto timm's ``mobilenetv1_100``
(``tools/convert_mobilenet_v1_weights.py``).
"""

from typing import Sequence

from torch import nn

from detectron2.layers import Conv2d, FrozenBatchNorm2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from panext_d2.layers.activation import get_activation
from panext_d2.layers.norm import set_bn_hyperparams, truncated_normal_init_
from panext_d2.layers.separable_conv import SeparableConv2d

__all__ = [
    "MOBILENET_V1_LAYERS",
    "LAYER_NAMES",
    "MobileNetV1",
    "build_mobilenet_v1_backbone",
    "mobilenet_depth",
]

# (stride, depth) of Table 2.5's 14 convolution layers: conv0 is a full 3x3 convolution,
# conv1..conv13 are depthwise-separable.
MOBILENET_V1_LAYERS = (
    (2, 32),
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)
LAYER_NAMES = tuple(f"conv{i}" for i in range(len(MOBILENET_V1_LAYERS)))


def mobilenet_depth(depth: int, depth_multiplier: float, min_depth: int) -> int:
    """TF-slim's depth rule: ``max(int(depth * depth_multiplier), min_depth)``."""
    return max(int(depth * depth_multiplier), min_depth)


class MobileNetV1(Backbone):
    """MobileNet-v1 feature extractor (no pooling / classifier), see the module docstring."""

    def __init__(
        self,
        *,
        depth_multiplier: float = 1.0,
        min_depth: int = 8,
        out_features: Sequence[str] = ("conv11", "conv13"),
        output_stride: int = 32,
        last_atrous_rate: int = 1,
        norm: str = "BN",
        activation: str = "relu6",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        freeze_at: int = 0,
        in_channels: int = 3,
        init_std: float = 0.03,
    ):
        """
        Args:
            out_features: subset of :data:`LAYER_NAMES`.
            output_stride: 32 (plain), 16 or 8 (atrous).
            freeze_at: number of leading layers (conv0 = 1) whose parameters are frozen and
                whose BN becomes :class:`FrozenBatchNorm2d`; 0 trains everything.
            init_std: std of the truncated-normal conv initialisation (TF OD API
                ``ssd_mobilenet_v1_coco`` ``conv_hyperparams``: 0.03).
        """
        super().__init__()
        unknown = [f for f in out_features if f not in LAYER_NAMES]
        if unknown or not out_features:
            raise ValueError(f"out_features {list(out_features)} must be among {LAYER_NAMES}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not 0 <= freeze_at <= len(LAYER_NAMES):
            raise ValueError(f"freeze_at must be in [0, {len(LAYER_NAMES)}], got {freeze_at}")
        num_layers = max(LAYER_NAMES.index(f) for f in out_features) + 1

        self._out_features = [n for n in LAYER_NAMES if n in out_features]
        self._out_feature_channels = {}
        self._out_feature_strides = {}
        self._output_stride = output_stride
        self.dilations = {}

        current_stride, rate = 1, 1
        channels = in_channels
        for index, (stride, depth) in enumerate(MOBILENET_V1_LAYERS[:num_layers]):
            name = LAYER_NAMES[index]
            out_channels = mobilenet_depth(depth, depth_multiplier, min_depth)
            # TF-slim mobilenet_v1_base: once the target stride is reached, strides become 1
            # and the rate grows by the skipped stride for the following layers.
            if current_stride == output_stride:
                layer_stride, layer_rate = 1, rate
                rate *= stride
            else:
                layer_stride, layer_rate = stride, 1
                current_stride *= stride
            if index == len(MOBILENET_V1_LAYERS) - 1:
                layer_rate *= last_atrous_rate
            if index == 0:
                layer = Conv2d(
                    channels,
                    out_channels,
                    3,
                    stride=layer_stride,
                    padding=1,
                    bias=False,
                    norm=get_norm(norm, out_channels),
                    activation=get_activation(activation),
                )
            else:
                layer = SeparableConv2d(
                    channels,
                    out_channels,
                    3,
                    stride=layer_stride,
                    dilation=layer_rate,
                    norm=norm,
                    activation=activation,
                )
            self.add_module(name, layer)
            self.dilations[name] = layer_rate
            self._out_feature_channels[name] = out_channels
            self._out_feature_strides[name] = current_stride
            channels = out_channels
        self._layer_names = LAYER_NAMES[:num_layers]
        # Only requested outputs are announced in output_shape().
        self._out_feature_channels = {n: self._out_feature_channels[n] for n in self._out_features}
        self._out_feature_strides = {n: self._out_feature_strides[n] for n in self._out_features}

        truncated_normal_init_(self, init_std)
        set_bn_hyperparams(self, bn_eps, bn_momentum)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int = 0):
        """Freeze the first ``freeze_at`` layers (parameters and BN statistics)."""
        for name in self._layer_names[:freeze_at]:
            layer = getattr(self, name)
            for p in layer.parameters():
                p.requires_grad_(False)
            setattr(self, name, FrozenBatchNorm2d.convert_frozen_batchnorm(layer))
        return self

    @property
    def size_divisibility(self) -> int:
        return self._output_stride

    def forward(self, x):
        outputs = {}
        for name in self._layer_names:
            x = getattr(self, name)(x)
            if name in self._out_feature_strides:
                outputs[name] = x
        return outputs


@BACKBONE_REGISTRY.register()
def build_mobilenet_v1_backbone(cfg, input_shape: ShapeSpec):
    """MobileNet-v1 from ``cfg.MODEL.MOBILENET`` (panext_d2/config/mobilenet.py)."""
    c = cfg.MODEL.MOBILENET
    return MobileNetV1(
        depth_multiplier=c.DEPTH_MULTIPLIER,
        min_depth=c.MIN_DEPTH,
        out_features=c.OUT_FEATURES,
        output_stride=c.OUTPUT_STRIDE,
        last_atrous_rate=c.LAST_ATROUS_RATE,
        norm=c.NORM,
        activation=c.ACTIVATION,
        bn_eps=c.BN_EPS,
        bn_momentum=c.BN_MOMENTUM,
        freeze_at=c.FREEZE_AT,
        in_channels=input_shape.channels,
        init_std=c.INIT_STD,
    )
