"""One instance segmentation branch (Kolhatkar (2020) Fig. 3.4, §3.1.2, §3.2.1 "Instance
Segmentation Branch Architecture").

The parameter tables pin the branch down exactly (docs/DESIGN.md §2: Kolhatkar's (2020) counts are a common
SSD base plus n x 247 073 for n branches at depth multiplier 1.0, one class)::

    stride-32 crop (C32) -- 3x3 depthwise-separable conv -> 128   dw: no bias; pw: bias; no BN
        -> [skip step 1] 4x4 stride-2 transposed conv 128 -> 32  +  1x1 conv C16 -> 32 on the
                         stride-16 crop of the same box          (FCN-16)
        -> [skip step 2] 4x4 stride-2 transposed conv 32 -> 32   +  1x1 conv C8 -> 32 on the
                         stride-8 crop of the same box           (FCN-8, the default)
        -> bilinear upsampling -> 1x1 scoring conv -> num_classes masks

1.0 multiplier, one class: 9 216 + 131 200 (separable) + 65 568 + 16 416 (step 1) + 16 416
+ 8 224 (step 2) + 33 (scoring) = 247 073; FCN-16 drops step 2 (24 640). The crop depths
C32 / C16 / C8 are MobileNet's (1024 / 512 / 256 x multiplier) while the branch depths stay
128 / 32: at multiplier 0.75 a branch has 205 857 parameters, which is exactly what Tables
5.7 and 5.9 imply ((MS-MN0.75 - SB-MN0.75) / 9 = 1 852 713 / 9).

With ``num_skips`` 0 (FCN-32) the scoring conv reads the 128-channel separable conv output.

The thesis upsamples bilinearly to the box size in the image *before* the 1x1 scoring conv.
Both are linear, and bilinear weights sum to one, so the two commute exactly: :meth:`forward`
scores at the branch's own resolution (stride 32 / 2^num_skips, where the mask loss is
computed, §3.2.1 "Loss") unless ``output_size`` is given, and inference pastes the scored
logits bilinearly into the image (:func:`~panext_d2.modeling.isb.masks.paste_mask_logits`),
which is the same result for a fraction of the cost.

Activations are not given by the thesis: ``activation`` (ReLU by default, as after every
conv / deconv of Mask R-CNN's mask head) follows the separable conv and each skip sum; the
scoring conv is linear.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

import fvcore.nn.weight_init as weight_init
from detectron2.layers import Conv2d, ConvTranspose2d

from panext_d2.layers.activation import get_activation
from panext_d2.layers.separable_conv import SeparableConv2d

__all__ = ["ISBBranch"]


class ISBBranch(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        *,
        num_skips: int = 2,
        conv_dim: int = 128,
        deconv_dim: int = 32,
        activation: str = "relu",
    ):
        """
        Args:
            in_channels: depths of the stride-32 crop, then of the skip crops (stride 16,
                stride 8); at least ``1 + num_skips`` entries.
            num_classes: masks predicted per box (one per class, §3.1.2 "Loss Function").
            num_skips: 2 = FCN-8 (default), 1 = FCN-16, 0 = FCN-32.
            conv_dim: depth of the 3x3 separable conv (128, §3.2.1).
            deconv_dim: depth of the transposed convs and skip convs (32, §3.2.1).
            activation: name for :func:`get_activation` ("" = none).
        """
        super().__init__()
        if not 0 <= num_skips <= 2 or len(in_channels) < 1 + num_skips:
            raise ValueError(f"num_skips={num_skips} needs 1 + num_skips input depths, got {in_channels}")
        self.num_skips = num_skips
        self.conv = SeparableConv2d(
            in_channels[0], conv_dim, 3, norm="", depthwise_bias=False, pointwise_bias=True
        )
        self.act = get_activation(activation, identity=True)
        self.upsample = nn.ModuleList()
        self.skip = nn.ModuleList()
        dim = conv_dim
        for skip_channels in in_channels[1 : 1 + num_skips]:
            self.upsample.append(ConvTranspose2d(dim, deconv_dim, 4, stride=2, padding=1))
            self.skip.append(Conv2d(skip_channels, deconv_dim, 1))
            dim = deconv_dim
        self.predictor = Conv2d(dim, num_classes, 1)
        self._init_weights()

    def _init_weights(self):
        for layer in [self.conv.depthwise, self.conv.pointwise, *self.upsample, *self.skip]:
            weight_init.c2_msra_fill(layer)
        # Small scoring weights, as detectron2's mask head predictor.
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    @property
    def output_stride_factor(self) -> int:
        """Output cells per stride-32 cell: 2 ** num_skips."""
        return 2**self.num_skips

    def forward(
        self,
        crops: Sequence[torch.Tensor],
        output_size: Optional[Tuple[int, int]] = None,
        skips_projected: Sequence[bool] = (),
    ) -> torch.Tensor:
        """
        Args:
            crops: the (M, C32, h, w) stride-32 crop, then the skip crops of the same boxes,
                (M, C16, 2h, 2w) and (M, C8, 4h, 4w).
            output_size: bilinearly upsample to this size before scoring (the thesis' order);
                None scores at the branch resolution ``(h, w) * 2 ** num_skips``.
            skips_projected: per skip crop, True when it was cut from the map already passed
                through this branch's 1x1 skip conv (``self.skip[i]``), which is then not
                applied again. A 1x1 conv commutes with exact crops and with bilinear
                resizing (its weights sum to one), so both orders give the same result; the
                head projects first when that is cheaper.

        Returns:
            (M, num_classes, H, W) mask logits.
        """
        x = self.act(self.conv(crops[0]))
        projected = list(skips_projected) + [False] * (len(self.skip) - len(skips_projected))
        for upsample, skip, crop, done in zip(self.upsample, self.skip, crops[1:], projected):
            x = self.act(upsample(x) + (crop if done else skip(crop)))
        if output_size is not None:
            x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)
        return self.predictor(x)
