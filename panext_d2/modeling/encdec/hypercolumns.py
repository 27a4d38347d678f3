"""Inverted hypercolumns of Andrade (2021) eq. 6.1: X = sum_i phi_i(F_i) over the decoder outputs,
phi_i = bilinear upsampling to the finest output's size + 1x1 conv to a common width C."""

from typing import List, Sequence

import torch
from detectron2.layers import Conv2d
from fvcore.nn import weight_init
from torch import nn

from .unet import resize_to


class InvertedHypercolumns(nn.Module):
    """Sums every decoder output after mapping it to ``out_channels`` at the finest size.

    As in :class:`UNetStage`, each 1x1 conv is applied before the (bilinear, hence linear and
    affine-preserving) upsampling, which gives the same X as eq. 6.1's order at less cost.
    The finest map is the last element of the input list.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int):
        super().__init__()
        self.phi = nn.ModuleList(Conv2d(c, out_channels, kernel_size=1) for c in in_channels)
        for conv in self.phi:
            weight_init.c2_xavier_fill(conv)
        self.out_channels = out_channels

    def forward(self, decoder_outputs: List[torch.Tensor]) -> torch.Tensor:
        size = decoder_outputs[-1].shape[-2:]
        x = 0
        for phi, f in zip(self.phi, decoder_outputs):
            x = x + resize_to(phi(f), size)
        return x
