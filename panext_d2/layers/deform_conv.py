"""Deformable convolution (Dai et al. 2017; modulated: Zhu et al. 2019) with a fast CPU path.

``torchvision.ops.deform_conv2d`` runs on the CPU through a scalar im2col loop, several times
slower than a plain convolution of the same shape. :func:`deform_conv2d` computes the same
function from stock operators: one ``grid_sample`` gathers the bilinearly interpolated input
at every kernel tap's offset position (all taps and offset groups in one call), and one
batched matrix product with the reshaped weight does the convolution. Both are vectorised and
differentiable, so autograd gives the gradients.

:class:`DeformConv2d` is ``torchvision.ops.DeformConv2d`` (same parameters, state-dict keys
and initialisation, so checkpoints are interchangeable) with a choice of implementation:
``"torchvision"``, ``"fast"`` or ``"auto"`` (fast on CPU, torchvision elsewhere).
"""
from typing import Optional, Tuple, Union

import torch
import torchvision
from torch import Tensor
from torch.nn import functional as F
from torch.nn.modules.utils import _pair

__all__ = ["DEFORM_IMPLS", "DeformConv2d", "deform_conv2d"]

DEFORM_IMPLS = ("auto", "torchvision", "fast")

_IntPair = Union[int, Tuple[int, int]]


def _sampling_grid(
    offset: Tensor, kernel: Tuple[int, int], in_size: Tuple[int, int], stride, padding, dilation
) -> Tensor:
    """``grid_sample`` grid (N * G, K * Ho, Wo, 2) of the K taps' sampling positions, from
    offsets (N, G * K * 2, Ho, Wo) laid out as torchvision's: per offset group and tap (in
    row-major kernel order) a (dy, dx) pair."""
    n, _, ho, wo = offset.shape
    kh, kw = kernel
    h, w = in_size
    k = kh * kw
    groups = offset.shape[1] // (2 * k)
    opts = dict(device=offset.device, dtype=offset.dtype)
    tap_y = (torch.arange(kh, **opts) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, **opts) * dilation[1]).repeat(kh)
    out_y = torch.arange(ho, **opts) * stride[0] - padding[0]
    out_x = torch.arange(wo, **opts) * stride[1] - padding[1]
    off = offset.reshape(n, groups, k, 2, ho, wo)
    y = off[:, :, :, 0] + (tap_y[:, None, None] + out_y[:, None])
    x = off[:, :, :, 1] + (tap_x[:, None, None] + out_x)
    # Pixel centres of align_corners=False: position p maps to (2p + 1) / size - 1; samples
    # outside the image read zeros, as torchvision's bilinear interpolation does.
    grid = torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1)
    return grid.view(n * groups, k * ho, wo, 2)


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: _IntPair = 1,
    padding: _IntPair = 0,
    dilation: _IntPair = 1,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (same arguments, layouts and result) as
    ``grid_sample`` + matrix product.

    Args:
        input: (N, C, H, W); offset: (N, 2 * G * kh * kw, Ho, Wo) for G offset groups;
        weight: (O, C / groups, kh, kw); bias: (O,); mask: (N, G * kh * kw, Ho, Wo)
            modulation scalars or None.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = input.shape
    out_channels, group_channels, kh, kw = weight.shape
    k = kh * kw
    ho, wo = offset.shape[-2:]
    offset_groups = offset.shape[1] // (2 * k)
    groups = c // group_channels
    if offset_groups * 2 * k != offset.shape[1] or c % offset_groups or c % group_channels:
        raise ValueError(
            f"deform_conv2d: offset of {offset.shape[1]} channels / input of {c} channels do "
            f"not fit a {kh}x{kw} weight with {group_channels} input channels per group"
        )
    grid = _sampling_grid(offset, (kh, kw), (h, w), stride, padding, dilation)
    # grid_sample's CPU kernel reads a channels-last input about twice as fast.
    source = input.reshape(n * offset_groups, c // offset_groups, h, w)
    cols = F.grid_sample(
        source.contiguous(memory_format=torch.channels_last),
        grid.to(input.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (N * G, C / G, K * Ho, Wo)
    cols = cols.view(n, offset_groups, c // offset_groups, k, ho * wo)
    if mask is not None:
        cols = cols * mask.reshape(n, offset_groups, 1, k, ho * wo)
    cols = cols.view(n, groups, group_channels * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, out_channels // groups, group_channels * k), cols)
    out = out.view(n, out_channels, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    if input.is_contiguous(memory_format=torch.channels_last) and not input.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)  # keep the caller's layout
    return out


class DeformConv2d(torchvision.ops.DeformConv2d):
    """``torchvision.ops.DeformConv2d`` whose forward runs :func:`deform_conv2d` (``impl``
    "fast"), torchvision's operator ("torchvision"), or the fast one for CPU inputs and
    torchvision's otherwise ("auto"). Parameters and state dict are torchvision's."""

    def __init__(self, *args, impl: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if impl not in DEFORM_IMPLS:
            raise ValueError(f"deform conv impl must be one of {DEFORM_IMPLS}, got {impl!r}")
        self.impl = impl

    def uses_fast_path(self, input: Tensor) -> bool:
        return self.impl == "fast" or (self.impl == "auto" and input.device.type == "cpu")

    def forward(self, input: Tensor, offset: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if not self.uses_fast_path(input):
            return super().forward(input, offset, mask)
        return deform_conv2d(
            input, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask
        )

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, impl={self.impl!r})"
