"""Weighted BiFPN decoder of EfficientDet (Andrade (2021) §5.5, Fig. 5.7 c), eq. 5.2), the decoder
of the EfficientDet-D2 baseline of §8.4 (EfficientNet-B2 + 5 BiFPN layers of width 112).

Levels: the encoder features ``in_features`` (finest first, e.g. C3-C5), each brought to
the BiFPN width by a lateral 1x1 conv + norm, plus ``num_extra_levels`` levels made from
the coarsest feature by a 1x1 conv + norm and repeated 3x3 stride-2 max pooling
(EfficientDet's P6, P7: the "two extra pooling layers" of §8.4). Convs that would map a
width onto itself are left out, as in EfficientDet. One simplification: each level's
lateral conv feeds both passes of the first layer, where EfficientDet gives the bottom-up
nodes of C4 / C5 a second lateral conv of their own (about 54 k parameters at D2's width).

Each BiFPN layer runs a top-down then a bottom-up pass. Every node is
``norm(separable_conv3x3(act(fuse(inputs))))`` where ``fuse`` is eq. 5.2's fast normalised
fusion ``sum_i relu(w_i) / (eps + sum_j relu(w_j)) * I_i`` (or a plain sum). The top-down
pass has a node at every level but the coarsest; the bottom-up pass at every level but the
finest, whose output is its top-down node. Bottom-up nodes of intermediate levels take three
inputs (the level's input, its top-down node and the resized finer output: the input-to-
output "residual" edge of §5.5), the coarsest takes two.

Resizing matches the target level's size exactly, so any input size works: upsampling is
nearest-neighbour (EfficientDet's x2), downsampling a 3x3 stride-2 max pool with padding 1
(output ``ceil(size / 2)``, the size timm's encoders and "same" pooling give), followed by a
nearest resize only where the sizes still differ.
"""

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from fvcore.nn import weight_init
from torch import nn

from panext_d2.layers.activation import get_activation
from panext_d2.layers.norm import norm_or_identity
from panext_d2.layers.separable_conv import SeparableConv2d

from .build import ENCDEC_DECODER_REGISTRY, input_strides

__all__ = ["BiFPNDecoder", "BiFPNLayer", "BiFPNNode", "WeightedFusion", "resample_to"]

FUSIONS = ("fast_normalized", "sum")


def downsample(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-2 max pooling, output ``ceil(size / 2)``."""
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def resample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` resized to ``size``: max pooled when larger (one 3x3 stride-2 pool; nearest
    resize for what remains), nearest upsampling when smaller, unchanged when equal."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] > size[0] or x.shape[-1] > size[1]:
        x = downsample(x)
        if tuple(x.shape[-2:]) == size:
            return x
    return F.interpolate(x, size=size, mode="nearest")


class WeightedFusion(nn.Module):
    """Fusion of same-shaped maps: eq. 5.2 (``"fast_normalized"``, weights initialised to
    one as in EfficientDet) or an unweighted sum (``"sum"``)."""

    def __init__(self, num_inputs: int, mode: str = "fast_normalized", eps: float = 1e-4):
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"MODEL.ENCDEC.BIFPN.FUSION={mode!r}; expected one of {FUSIONS}")
        self.mode = mode
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_inputs)) if mode == "fast_normalized" else None

    def normalized_weights(self) -> torch.Tensor:
        w = F.relu(self.weight)
        return w / (self.eps + w.sum())

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        x = torch.stack(inputs, dim=0)
        if self.weight is None:
            return x.sum(dim=0)
        w = self.normalized_weights().to(x.dtype)
        return (w.view(-1, *([1] * (x.dim() - 1))) * x).sum(dim=0)


class BiFPNNode(nn.Module):
    """fuse -> activation -> depthwise-separable 3x3 conv -> norm (EfficientDet's node; the
    separable conv has no bias, the norm's shift replaces it, unless ``norm`` is "")."""

    def __init__(
        self,
        num_inputs: int,
        channels: int,
        norm: str = "BN",
        activation: str = "swish",
        fusion: str = "fast_normalized",
        eps: float = 1e-4,
    ):
        super().__init__()
        self.fuse = WeightedFusion(num_inputs, fusion, eps)
        try:
            self.act = get_activation(activation, inplace=False, identity=True)
        except ValueError as err:
            raise ValueError(f"MODEL.ENCDEC.BIFPN.ACTIVATION={activation!r}: {err}") from err
        self.conv = SeparableConv2d(
            channels, channels, 3, depthwise_bias=False, pointwise_bias=not norm
        )
        for conv in (self.conv.depthwise, self.conv.pointwise):
            weight_init.c2_msra_fill(conv)
        self.norm = norm_or_identity(norm, channels)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        return self.norm(self.conv(self.act(self.fuse(inputs))))


class BiFPNLayer(nn.Module):
    """One BiFPN layer over ``num_levels`` maps of width ``channels``, finest first.

    ``top_down[i]`` is the top-down node of level ``i`` (levels ``0 .. L-2``),
    ``bottom_up[i - 1]`` the bottom-up node of level ``i`` (levels ``1 .. L-1``). With
    ``top_down_only`` the layer has no bottom-up nodes and returns the finest map alone.
    """

    def __init__(
        self,
        num_levels: int,
        channels: int,
        norm: str = "BN",
        activation: str = "swish",
        fusion: str = "fast_normalized",
        eps: float = 1e-4,
        top_down_only: bool = False,
    ):
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"a BiFPN layer needs at least two levels, got {num_levels}")
        self.num_levels = num_levels
        args = (channels, norm, activation, fusion, eps)
        self.top_down = nn.ModuleList(BiFPNNode(2, *args) for _ in range(num_levels - 1))
        self.top_down_only = top_down_only
        self.bottom_up = nn.ModuleList(
            BiFPNNode(3 if level < num_levels - 1 else 2, *args)
            for level in range(1, 1 if top_down_only else num_levels)
        )

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(inputs) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} levels, got {len(inputs)}")
        top = self.num_levels - 1
        td = [None] * self.num_levels
        td[top] = inputs[top]
        for i in range(top - 1, -1, -1):
            size = inputs[i].shape[-2:]
            td[i] = self.top_down[i]([inputs[i], resample_to(td[i + 1], size)])
        outputs = [td[0]]
        if self.top_down_only:
            return outputs
        for i in range(1, self.num_levels):
            finer = resample_to(outputs[-1], inputs[i].shape[-2:])
            fused = [inputs[i], td[i], finer] if i < top else [inputs[i], finer]
            outputs.append(self.bottom_up[i - 1](fused))
        return outputs


def _projection(in_channels: int, out_channels: int, norm: str) -> nn.Module:
    """1x1 conv + norm to ``out_channels``, or identity when the widths already agree."""
    if in_channels == out_channels:
        return nn.Identity()
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size=1,
        bias=not norm,
        norm=get_norm(norm, out_channels),
    )
    weight_init.c2_msra_fill(conv)
    return conv


@ENCDEC_DECODER_REGISTRY.register()
class BiFPNDecoder(nn.Module):
    """Stacked weighted BiFPN layers (Andrade (2021) §5.5) on ``in_features`` (finest first,
    consecutive strides doubling) plus ``num_extra_levels`` pooled levels.

    ``forward`` returns the last layer's outputs coarsest first (P7 .. P3 for C3-C5 and two
    extra levels): ``out_channels`` = ``[channels] * levels`` and ``out_strides`` coarsest
    first. ``last_conv`` is None: the finest output ends in a norm, not a ReLU.

    ``finest_only`` (set for ``MODEL.ENCDEC.HEAD`` "last_layer", whose classifier reads only the
    finest map: the red pathway of Fig. 5.8) drops the last layer's bottom-up pass, which
    could not reach that map, and returns the finest output alone. Its parameters would get
    no gradient, which DistributedDataParallel without ``find_unused_parameters`` rejects.
    The finest output is the same either way.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        in_features: Sequence[str],
        channels: int = 112,
        num_layers: int = 5,
        num_extra_levels: int = 2,
        norm: str = "BN",
        activation: str = "swish",
        fusion: str = "fast_normalized",
        eps: float = 1e-4,
        finest_only: bool = False,
    ):
        """
        Args:
            input_shape: the encoder's output shapes, {feature name: ShapeSpec} (channels and
                stride of each ``in_features`` entry).
            in_features: encoder features fed to the BiFPN, finest first, each stride twice the
                previous one (e.g. C3-C5); ``MODEL.ENCDEC.IN_FEATURES``.
            channels: width of every BiFPN level (EfficientDet-D2: 112);
                ``MODEL.ENCDEC.BIFPN.CHANNELS``.
            num_layers: number of stacked BiFPN layers, >= 1 (D2: 5);
                ``MODEL.ENCDEC.BIFPN.NUM_LAYERS``.
            num_extra_levels: levels added below the coarsest feature by 1x1 projection and
                repeated 3x3 stride-2 max pooling (P6, P7 for 2); 0 adds none.
                ``MODEL.ENCDEC.BIFPN.NUM_EXTRA_LEVELS``.
            norm: norm after the lateral / extra 1x1 convs and every node's separable conv
                (detectron2 norm name, "" for none); ``MODEL.ENCDEC.BIFPN.NORM``.
            activation: activation before each node's separable conv ("swish", "relu", ...;
                "" for none); ``MODEL.ENCDEC.BIFPN.ACTIVATION``.
            fusion: node fusion, "fast_normalized" (eq. 5.2, learned weights) or "sum";
                ``MODEL.ENCDEC.BIFPN.FUSION``.
            eps: epsilon of the fast normalised fusion's denominator;
                ``MODEL.ENCDEC.BIFPN.EPS``.
            finest_only: drop the last layer's bottom-up pass and return the finest output
                alone; by config True when ``MODEL.ENCDEC.HEAD`` is "last_layer".
        """
        super().__init__()
        strides = input_strides(input_shape, in_features, doubling=True)
        if num_layers < 1:
            raise ValueError(f"MODEL.ENCDEC.BIFPN.NUM_LAYERS={num_layers}; expected >= 1")
        if num_extra_levels < 0:
            raise ValueError(
                f"MODEL.ENCDEC.BIFPN.NUM_EXTRA_LEVELS={num_extra_levels}; expected >= 0"
            )
        num_levels = len(in_features) + num_extra_levels
        if num_levels < 2:
            raise ValueError(
                f"the BiFPN needs at least two levels: {len(in_features)} MODEL.ENCDEC."
                f"IN_FEATURES + {num_extra_levels} MODEL.ENCDEC.BIFPN.NUM_EXTRA_LEVELS"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"MODEL.ENCDEC.BIFPN.FUSION={fusion!r}; expected one of {FUSIONS}")
        self.in_features = list(in_features)
        self.num_extra_levels = num_extra_levels
        self.laterals = nn.ModuleList(
            _projection(input_shape[f].channels, channels, norm) for f in self.in_features
        )
        coarsest = input_shape[self.in_features[-1]].channels
        self.extra_projection = (
            _projection(coarsest, channels, norm) if num_extra_levels else nn.Identity()
        )
        self.layers = nn.ModuleList(
            BiFPNLayer(
                num_levels,
                channels,
                norm,
                activation,
                fusion,
                eps,
                top_down_only=finest_only and k == num_layers - 1,
            )
            for k in range(num_layers)
        )
        self.finest_only = finest_only
        all_strides = strides + [strides[-1] * 2 ** (k + 1) for k in range(num_extra_levels)]
        out_strides = all_strides[:1] if finest_only else all_strides
        self.out_channels: List[int] = [channels] * len(out_strides)
        self.out_strides: List[int] = out_strides[::-1]

    @classmethod
    def from_config(cls, cfg, input_shape):
        b = cfg.MODEL.ENCDEC.BIFPN
        return {
            "input_shape": input_shape,
            "in_features": cfg.MODEL.ENCDEC.IN_FEATURES,
            "channels": b.CHANNELS,
            "num_layers": b.NUM_LAYERS,
            "num_extra_levels": b.NUM_EXTRA_LEVELS,
            "norm": b.NORM,
            "activation": b.ACTIVATION,
            "fusion": b.FUSION,
            "eps": b.EPS,
            "finest_only": cfg.MODEL.ENCDEC.HEAD == "last_layer",
        }

    @property
    def last_conv(self):
        return None

    def forward(self, features: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
        levels = [lat(features[f]) for lat, f in zip(self.laterals, self.in_features)]
        if self.num_extra_levels:
            x = self.extra_projection(features[self.in_features[-1]])
            for _ in range(self.num_extra_levels):
                x = downsample(x)
                levels.append(x)
        for layer in self.layers:
            levels = layer(levels)
        return levels[::-1]
