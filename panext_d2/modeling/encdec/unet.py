"""U-Net decoder of Andrade (2021) §6.1.1: bilinear upsampling instead of transposed convolutions,
element-wise sum instead of concatenation in the skips, two 3x3 conv-BN-ReLU per stage."""

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec
from fvcore.nn import weight_init
from torch import nn

from ...layers.conv_block import conv_norm_act
from .build import ENCDEC_DECODER_REGISTRY, input_strides


def conv_bn_relu(in_channels, out_channels, norm):
    """3x3 convolution + normalisation + ReLU (bias only without normalisation)."""
    return conv_norm_act(in_channels, out_channels, 3, norm=norm, activation="relu")


def resize_to(x, size):
    """Bilinear resampling of ``x`` to ``size`` (identity when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UNetStage(nn.Module):
    """up(x) -> 1x1 conv to the skip's width -> + skip -> two 3x3 conv-BN-ReLU.

    The 1x1 conv runs before the upsampling: bilinear interpolation is linear with weights
    summing to one, so it commutes with a 1x1 conv (bias included) and the result equals
    "upsample, then 1x1" at a quarter of the cost. The upsampling resizes to the skip's size,
    which is exactly x2 when the input is padded to the encoder's output stride.
    """

    def __init__(self, in_channels, skip_channels, out_channels, norm):
        super().__init__()
        self.match = Conv2d(in_channels, skip_channels, kernel_size=1)
        weight_init.c2_xavier_fill(self.match)
        self.conv1 = conv_bn_relu(skip_channels, out_channels, norm)
        self.conv2 = conv_bn_relu(out_channels, out_channels, norm)

    def forward(self, x, skip):
        x = resize_to(self.match(x), skip.shape[-2:]) + skip
        return self.conv2(self.conv1(x))


class UNetUpStage(nn.Module):
    """A stage past the finest skip: x2 bilinear upsampling, then two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels, out_channels, norm):
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels, out_channels, norm)
        self.conv2 = conv_bn_relu(out_channels, out_channels, norm)

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv2(self.conv1(x))


@ENCDEC_DECODER_REGISTRY.register()
class UNetDecoder(nn.Module):
    """Decodes encoder features ``in_features`` (finest first) from the coarsest one up.

    One stage per width in ``channels``: the first ``len(in_features) - 1`` each add a skip
    (res4, res3, ... for a ResNet); further stages upsample x2 without a skip, so that, as in
    U-Net, the decoder can mirror the encoder back to the input resolution (ResNet-50:
    strides 16, 8, 4 with skips, then 2 and 1). detectron2's ResNet stem exposes no stride-2
    map, so the stride-2 stage has no skip. ``forward`` returns the output of every stage,
    coarsest first.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        in_features: Sequence[str],
        channels: Sequence[int],
        norm: str = "BN",
    ):
        """
        Args:
            input_shape: the encoder's output shapes, {feature name: ShapeSpec} (channels and
                stride of each ``in_features`` entry).
            in_features: at least two encoder features, finest first with increasing strides
                (e.g. res2..res5); the coarsest is decoded, the others are the skips.
                ``MODEL.ENCDEC.IN_FEATURES``.
            channels: output width of each decoder stage, coarsest stage first; at least
                ``len(in_features) - 1`` entries (one per skip), each further entry a x2 stage
                without skip. ``MODEL.ENCDEC.DECODER_CHANNELS``.
            norm: norm after every 3x3 conv (detectron2 norm name, "" for none: the convs then
                have a bias); ``MODEL.ENCDEC.NORM``.
        """
        super().__init__()
        if len(in_features) < 2:
            raise ValueError(f"the U-Net decoder needs at least two features, got {in_features}")
        if len(channels) < len(in_features) - 1:
            raise ValueError(
                f"features {list(in_features)} need at least {len(in_features) - 1} decoder "
                f"stages (one per skip), but MODEL.ENCDEC.DECODER_CHANNELS has {list(channels)}"
            )
        input_strides(input_shape, in_features)
        self.in_features = list(in_features)
        skips = self.in_features[-2::-1]  # coarsest skip first
        widths = [input_shape[self.in_features[-1]].channels] + list(channels)
        self.stages = nn.ModuleList(
            UNetStage(widths[i], input_shape[name].channels, widths[i + 1], norm)
            for i, name in enumerate(skips)
        )
        self.stages.extend(
            UNetUpStage(widths[i], widths[i + 1], norm) for i in range(len(skips), len(channels))
        )
        self._skips = skips + [None] * (len(channels) - len(skips))
        self.out_channels: List[int] = list(channels)
        finest, extra = input_shape[skips[-1]].stride, len(channels) - len(skips)
        if finest % 2**extra:
            raise ValueError(
                f"{extra} decoder stage(s) past the finest skip (stride {finest}) would go below "
                f"the input resolution; MODEL.ENCDEC.DECODER_CHANNELS {list(channels)} is too long"
            )
        self.out_strides: List[int] = [input_shape[name].stride for name in skips] + [
            finest // 2 ** (k + 1) for k in range(extra)
        ]

    @classmethod
    def from_config(cls, cfg, input_shape):
        e = cfg.MODEL.ENCDEC
        return {
            "input_shape": input_shape,
            "in_features": e.IN_FEATURES,
            "channels": e.DECODER_CHANNELS,
            "norm": e.NORM,
        }

    @property
    def last_conv(self):
        return self.stages[-1].conv2

    def forward(self, features: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
        x = features[self.in_features[-1]]
        outputs = []
        for stage, name in zip(self.stages, self._skips):
            x = stage(x, features[name] if name else None)
            outputs.append(x)
        return outputs
