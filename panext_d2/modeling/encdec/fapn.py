"""Feature-aligned Pyramid Network decoder (Huang et al. 2021; Andrade (2021) §5.6, the
"ResNet50-FaPN" baseline of §8.4 / Table 8.4).

FaPN is detectron2's FPN with two changes (paper §3, Fig. 2):

* every lateral connection C_i goes through a feature selection module (FSM, §3.2, seed
  §5.6.2) instead of a bare 1x1 conv;
* the top-down path aligns the upsampled coarser level to the lateral with a feature
  alignment module (FAM, §3.1, Andrade 2021 §5.6.1): a modulated deformable 3x3 conv (DCNv2) whose
  offsets and masks are predicted from the concatenated lateral and upsampled map.

Each level then has FPN's 3x3 output conv. Decisions where the paper is silent follow the
authors' released code: no bias in the FSM's attention conv, the upsampled map doubled in
the offset conv's input, a ReLU after the deformable conv. Two simplifications against that
code: offsets and modulation come from a single 1x1 conv on the concatenation (the released
code first reduces 2C -> C with a bias-free 1x1 conv, then predicts them with a 3x3 conv:
about 0.5 M more parameters per FAM at width 256, 1.55 M for ResNet-50's three), and the
FSM's projection has a bias when it has no norm (detectron2's FPN lateral convention).
"""

import math
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec
from fvcore.nn import weight_init
from torch import nn

from ...layers.conv_block import conv_norm_act
from ...layers.deform_conv import DEFORM_IMPLS, DeformConv2d
from .build import ENCDEC_DECODER_REGISTRY, input_strides
from .unet import resize_to

__all__ = ["FaPNDecoder", "FeatureAlignmentModule", "FeatureSelectionModule"]


class FeatureSelectionModule(nn.Module):
    """FSM (paper §3.2, Andrade 2021 §5.6.2): ``proj(x + x * sigmoid(att(avgpool(x))))``.

    ``att`` is a bias-free 1x1 conv (``in_channels`` -> ``in_channels``) on the globally
    average-pooled input, so each channel is re-weighted by a factor in (1, 2); ``proj`` is the
    1x1 conv (+ norm) to the pyramid width that FPN's lateral conv is.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = ""):
        super().__init__()
        self.att = Conv2d(in_channels, in_channels, kernel_size=1, bias=False)
        self.proj = conv_norm_act(in_channels, out_channels, 1, norm=norm, activation=None, init="xavier")
        weight_init.c2_xavier_fill(self.att)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(self.att(x.mean(dim=(2, 3), keepdim=True)))
        return self.proj(x + x * att)


class FeatureAlignmentModule(nn.Module):
    """FAM (paper §3.1, Andrade 2021 §5.6.1): aligns the coarser level to the (selected) lateral.

    ``forward(lateral, coarse)``: ``up`` = ``coarse`` bilinearly resized to the lateral's size;
    a 1x1 conv on ``[lateral, 2 * up]`` predicts, per offset group and 3x3 tap, a (dy, dx)
    offset (torchvision's layout) and a modulation logit; the result is
    ``relu(dcn(up, offsets, 2 * sigmoid(logits))) + lateral``.

    The offset conv starts at zero, so at initialisation every tap samples its regular grid
    position with modulation 2 * sigmoid(0) = 1: the module is then exactly
    ``relu(conv3x3(up)) + lateral`` and alignment is learnt from the identity. (DCNv2's mask is
    sigmoid(logits), 0.5 at a zero init; the factor 2 makes the start an unscaled conv and is
    otherwise only a reparametrisation of the modulation range, (0, 2) instead of (0, 1).)
    """

    def __init__(self, channels: int, deformable_groups: int = 8, deform_impl: str = "auto"):
        super().__init__()
        if channels % deformable_groups:
            raise ValueError(
                f"MODEL.ENCDEC.FAPN.CHANNELS={channels} must be divisible by "
                f"MODEL.ENCDEC.FAPN.DEFORMABLE_GROUPS={deformable_groups}"
            )
        self.deformable_groups = deformable_groups
        self.num_taps = 9
        # 2 offsets + 1 modulation logit per group and tap.
        self.offset = Conv2d(2 * channels, 3 * deformable_groups * self.num_taps, kernel_size=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.dcn = DeformConv2d(channels, channels, kernel_size=3, padding=1, impl=deform_impl)
        weight_init.c2_xavier_fill(self.dcn)

    def offsets_and_mask(self, lateral: torch.Tensor, up: torch.Tensor):
        """Offsets (N, 2 * G * 9, H, W) and modulation (N, G * 9, H, W) in (0, 2)."""
        out = self.offset(torch.cat([lateral, 2 * up], dim=1))
        split = 2 * self.deformable_groups * self.num_taps
        return out[:, :split], 2 * torch.sigmoid(out[:, split:])

    def forward(self, lateral: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = resize_to(coarse, lateral.shape[-2:])
        offset, mask = self.offsets_and_mask(lateral, up)
        return F.relu(self.dcn(up, offset, mask)) + lateral


@ENCDEC_DECODER_REGISTRY.register()
class FaPNDecoder(nn.Module):
    """FaPN over encoder features ``in_features`` (finest first, e.g. res2..res5).

    ``forward`` returns P5..P2 (one map per input feature), coarsest first, all ``channels``
    wide, at the input features' strides: P_coarsest = out(FSM(C_coarsest)) and, going down,
    P_i = out(FAM(FSM(C_i), pre-output P_{i+1})), ``out`` FPN's 3x3 conv (+ norm, no
    activation, so ``last_conv`` is None). Sizes are matched by interpolating to the lateral's
    size, so inputs need not be multiples of the output stride.

    ``finest_only`` (set for ``MODEL.ENCDEC.HEAD`` "last_layer", whose classifier reads only the
    finest map) builds and returns the finest level's output conv alone: the coarser output
    convs would get no gradient, and DistributedDataParallel (without
    ``find_unused_parameters``) fails on parameters without one. The top-down path, hence every
    FSM and FAM, is the same either way.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        in_features: Sequence[str],
        channels: int = 256,
        norm: str = "",
        deformable_groups: int = 8,
        deform_impl: str = "auto",
        finest_only: bool = False,
    ):
        """
        Args:
            input_shape: the encoder's output shapes, {feature name: ShapeSpec} (channels and
                stride of each ``in_features`` entry).
            in_features: encoder features, finest first with increasing strides (e.g.
                res2..res5), one pyramid level each; ``MODEL.ENCDEC.IN_FEATURES``.
            channels: width of every pyramid level (FPN's 256); must be divisible by
                ``deformable_groups``. ``MODEL.ENCDEC.FAPN.CHANNELS``.
            norm: norm of the FSM projections and output convs (detectron2 norm name, ""
                for none: the convs then have a bias); ``MODEL.ENCDEC.FAPN.NORM``.
            deformable_groups: offset groups of each FAM's modulated deformable 3x3 conv
                (FaPN: 8); ``MODEL.ENCDEC.FAPN.DEFORMABLE_GROUPS``.
            deform_impl: deformable conv operator, "auto", "fast" or "torchvision" (see
                :mod:`panext_d2.layers.deform_conv`); ``MODEL.ENCDEC.FAPN.DEFORM_IMPL``.
            finest_only: build and return the finest level's output alone; by config True
                when ``MODEL.ENCDEC.HEAD`` is "last_layer".
        """
        super().__init__()
        input_strides(input_shape, in_features)
        if deform_impl not in DEFORM_IMPLS:
            raise ValueError(
                f"MODEL.ENCDEC.FAPN.DEFORM_IMPL={deform_impl!r}; expected one of {DEFORM_IMPLS}"
            )
        self.in_features = list(in_features)
        top_down = self.in_features[::-1]  # coarsest first
        self._top_down = top_down
        self.selection = nn.ModuleList(
            FeatureSelectionModule(input_shape[f].channels, channels, norm) for f in top_down
        )
        self.alignment = nn.ModuleList(
            FeatureAlignmentModule(channels, deformable_groups, deform_impl) for _ in top_down[1:]
        )
        self.output_convs = nn.ModuleList()
        out_levels = top_down[-1:] if finest_only else top_down
        for _ in out_levels:
            self.output_convs.append(
                conv_norm_act(channels, channels, 3, norm=norm, activation=None, init="xavier")
            )
        self.finest_only = finest_only
        self.out_strides: List[int] = [input_shape[f].stride for f in out_levels]
        self.out_channels: List[int] = [channels] * len(out_levels)
        self.out_features: List[str] = [f"p{int(math.log2(s))}" for s in self.out_strides]

    @classmethod
    def from_config(cls, cfg, input_shape):
        f = cfg.MODEL.ENCDEC.FAPN
        return {
            "input_shape": input_shape,
            "in_features": cfg.MODEL.ENCDEC.IN_FEATURES,
            "channels": f.CHANNELS,
            "norm": f.NORM,
            "deformable_groups": f.DEFORMABLE_GROUPS,
            "deform_impl": f.DEFORM_IMPL,
            "finest_only": cfg.MODEL.ENCDEC.HEAD == "last_layer",
        }

    @property
    def last_conv(self):
        return None  # the output convs end without an activation

    def forward(self, features: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
        x = self.selection[0](features[self._top_down[0]])
        levels = [x]  # top-down maps before the output convs, coarsest first
        for name, select, align in zip(self._top_down[1:], self.selection[1:], self.alignment):
            x = align(select(features[name]), x)
            levels.append(x)
        levels = levels[-len(self.output_convs) :]
        return [out(x) for out, x in zip(self.output_convs, levels)]
