"""Multi-level fuse block of Andrade (2021) eq. 6.2: Z' = psi2(F(psi1(X))), psi = squeeze-and-
excitation, F = three 3x3 conv-BN-ReLU; each part can be switched off (Table 8.5)."""

import torch
import torchvision
from torch import nn

from .unet import conv_bn_relu


class SqueezeExcitation(torchvision.ops.SqueezeExcitation):
    """Hu et al. 2018, torchvision's module: x * sigmoid(W2 relu(W1 avgpool(x))), W1: C -> C/r,
    W2: C/r -> C (``reduction`` r)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__(channels, max(1, channels // reduction))


class MultiLevelFuse(nn.Module):
    """psi1 (``se_in``) -> ``num_convs`` 3x3 conv-norm-ReLU (``conv``) -> psi2 (``se_out``);
    the width is kept, so any subset of the three parts composes (identity when all off)."""

    def __init__(
        self,
        channels: int,
        *,
        se_in: bool = True,
        conv: bool = True,
        se_out: bool = True,
        num_convs: int = 3,
        reduction: int = 16,
        norm: str = "BN",
    ):
        super().__init__()
        parts = []
        if se_in:
            parts.append(SqueezeExcitation(channels, reduction))
        if conv:
            parts.extend(conv_bn_relu(channels, channels, norm) for _ in range(num_convs))
        if se_out:
            parts.append(SqueezeExcitation(channels, reduction))
        self.body = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
