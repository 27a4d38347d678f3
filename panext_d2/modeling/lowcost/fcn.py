"""FCN skip head (Long et al.; Kolhatkar (2020) §2.5.1 "Skip Architecture", §4.2.1).

The deepest map is scored by a 1x1 conv (classes outputs, with bias); each skip step then
upsamples the running scores ×2 with a 4x4 stride-2 transposed conv (classes -> classes, no
bias) and **sums** them with a 1x1 scoring conv (with bias) of the next shallower map; the
result is upsampled bilinearly to the input size.

§2.5.1 describes concatenation + 1x1 fusion, but Table 4.2's parameter increments pin down the
summing variant of Long et al.'s code (docs/DESIGN.md §3): MN-FCN16 - MN-Base = 10 659 = (256·19 + 19)
+ 4·4·19·19, and FCN8 adds 8 227 = (128·19 + 19) + 4·4·19·19.

Skip steps = number of maps - 1: MobileNet FCN-32 / 16 / 8 score ``conv13`` and add
``conv11`` (stride 16) then ``conv5`` (stride 8); SqueezeNet FCN-16s / 8s / 4s score
``fire9`` and add the pooled stride-8 then stride-4 maps (v1.1: ``pool3``, ``pool1``).
"""

from typing import Dict

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from .common import SKIP_ALIGNS, ScoringHead, align_to, score_conv, select_features

__all__ = ["FCNSkipHead", "bilinear_upsample_kernel"]

DECONV_INITS = ("bilinear", "default")


def bilinear_upsample_kernel(channels: int, kernel_size: int = 4) -> torch.Tensor:
    """(channels, channels, k, k) weight of a per-channel bilinear ×(k/2) transposed conv
    (Long et al.'s ``upsample_filt``): channel c -> c only."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return weight


@SEM_SEG_HEADS_REGISTRY.register()
class FCNSkipHead(ScoringHead):
    """FCN skip decoder on ``MODEL.SEM_SEG_HEAD.IN_FEATURES`` (any order: deepest first by
    stride; every further map must have half the stride of the previous one)."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        score_init_std: float = 0.0,
        deconv_init: str = "bilinear",
        skip_align: str = "crop",
        **kwargs,
    ):
        """
        Args:
            input_shape: the maps used; the deepest is scored, the others are skips.
            score_init_std: see :func:`~panext_d2.modeling.lowcost.common.score_conv`.
            deconv_init: ``"bilinear"`` (Long et al.: "initialize the 2x upsampling to bilinear
                interpolation", then learned) or ``"default"`` (PyTorch's initialisation).
            skip_align: how an upsampled score map that does not match its skip map's size
                (inputs not a multiple of the stride) is fitted to it, see
                :func:`~panext_d2.modeling.lowcost.common.align_to`.
            kwargs: :class:`~panext_d2.modeling.lowcost.common.ScoringHead` arguments.
        """
        super().__init__(**kwargs)
        if not input_shape:
            raise ValueError("FCNSkipHead needs at least one feature map")
        if deconv_init not in DECONV_INITS:
            raise ValueError(f"deconv_init must be one of {DECONV_INITS}, got {deconv_init!r}")
        if skip_align not in SKIP_ALIGNS:
            raise ValueError(f"skip_align must be one of {SKIP_ALIGNS}, got {skip_align!r}")
        ordered = sorted(input_shape.items(), key=lambda kv: -kv[1].stride)
        for (deep, a), (skip, b) in zip(ordered[:-1], ordered[1:]):
            if a.stride != 2 * b.stride:
                raise ValueError(
                    f"each FCN skip step upsamples x2: {skip!r} (stride {b.stride}) must have half "
                    f"the stride of {deep!r} (stride {a.stride})"
                )
        self.in_features = [name for name, _ in ordered]
        self.stride = ordered[-1][1].stride
        self.skip_align = skip_align
        nc = self.num_classes
        self.score = score_conv(ordered[0][1].channels, nc, score_init_std)
        self.skip_score = nn.ModuleDict()
        self.upsample = nn.ModuleDict()
        for name, shape in ordered[1:]:
            self.skip_score[name] = score_conv(shape.channels, nc, score_init_std)
            deconv = nn.ConvTranspose2d(nc, nc, 4, stride=2, padding=1, bias=False)
            if deconv_init == "bilinear":
                with torch.no_grad():
                    deconv.weight.copy_(bilinear_upsample_kernel(nc, 4))
            self.upsample[name] = deconv

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        c = cfg.MODEL.LOWCOST_SEG
        return {
            "input_shape": select_features(input_shape, cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES),
            "score_init_std": c.SCORE_INIT_STD,
            "deconv_init": c.DECONV_INIT,
            "skip_align": c.SKIP_ALIGN,
            **cls.common_config(cfg),
        }

    @property
    def num_skip_steps(self) -> int:
        return len(self.in_features) - 1

    def scores(self, features):
        x = self.score(features[self.in_features[0]])
        for name in self.in_features[1:]:
            skip = self.skip_score[name](features[name])
            x = align_to(self.upsample[name](x), skip.shape[-2:], self.skip_align) + skip
        return x, self.stride
