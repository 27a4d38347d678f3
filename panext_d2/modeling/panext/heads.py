"""Kernel head and position head of the kernel generator (Debucean (2022) §3.1.2), shared across
the top feature levels (PanopticFCN)."""

import math
from typing import List, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn

from ...layers.deform_conv import DeformConv2d
from ...layers.norm import norm_or_identity


def coord_features(x: torch.Tensor) -> torch.Tensor:
    """``x`` with two channels of normalised (x, y) coordinates in [-1, 1] appended."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.cat([x, torch.stack([xx, yy]).expand(n, -1, -1, -1)], dim=1)


class DeformConv(nn.Module):
    """3x3 deformable convolution whose offsets come from a learned conv initialised to zero,
    so that it starts as a plain convolution. ``impl`` picks the deformable operator
    (:class:`panext_d2.layers.deform_conv.DeformConv2d`); the parameters do not depend on it."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, impl: str = "auto"):
        super().__init__()
        self.offset = nn.Conv2d(in_channels, 2 * 9, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = DeformConv2d(in_channels, out_channels, 3, padding=1, bias=bias, impl=impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.offset(x))


class ConvStack(nn.Sequential):
    """``num_convs`` x (3x3 conv [deformable] -> norm -> activation). Conv weights are
    N(0, 0.01) when a norm follows (PanopticFCN's heads); without a norm they keep PyTorch's
    default init, as PanopticFCN's feature encoder, since N(0, 0.01) would shrink every
    activation ~10x per layer there."""

    def __init__(
        self,
        in_channels,
        channels,
        num_convs,
        norm="GN",
        deform=False,
        activation=nn.ReLU,
        deform_impl="auto",
    ):
        layers = []
        for i in range(num_convs):
            cin = in_channels if i == 0 else channels
            if deform:
                conv = DeformConv(cin, channels, bias=not norm, impl=deform_impl)
                if norm:
                    init_conv(conv.conv)
            else:
                conv = nn.Conv2d(cin, channels, 3, padding=1, bias=not norm)
                if norm:
                    init_conv(conv)
            layers += [conv, norm_or_identity(norm, channels), activation()]
        super().__init__(*layers)


def init_conv(conv: nn.Module, std: float = 0.01, bias: float = 0.0) -> nn.Module:
    nn.init.normal_(conv.weight, std=std)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, bias)
    return conv


class KernelHead(nn.Module):
    """Coordinates + conv stack (GroupNorm, ReLU) + 3x3 output conv -> a kernel-weight map of
    ``kernel_dim`` channels per level."""

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        kernel_dim: int,
        num_convs: int,
        convs_dim: int,
        coord: bool,
        norm: str,
    ):
        """
        Args:
            in_channels: channels of the input levels, which must all share one width (by
                config: the FPN width of ``MODEL.PANEXT.KERNEL_IN_FEATURES``).
            kernel_dim: channels of the output kernel-weight map, i.e. the dimension of each
                dynamic 1x1 kernel; ``MODEL.PANEXT.KERNEL_DIM``.
            num_convs: number of 3x3 conv-norm-ReLU layers before the output conv;
                ``MODEL.PANEXT.KERNEL_HEAD.NUM_CONVS``.
            convs_dim: channels of those convs; ``MODEL.PANEXT.KERNEL_HEAD.CONVS_DIM``.
            coord: whether two normalised (x, y) coordinate channels are appended to each
                level before the convs; ``MODEL.PANEXT.KERNEL_HEAD.COORD``.
            norm: norm of the convs ("GN"; "" for none, then biased convs with PyTorch's
                default init); ``MODEL.PANEXT.KERNEL_HEAD.NORM``.
        """
        super().__init__()
        self.coord = coord
        self.convs = ConvStack(in_channels + 2 * coord, convs_dim, num_convs, norm)
        self.out = init_conv(nn.Conv2d(convs_dim, kernel_dim, 3, padding=1))

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        P = cfg.MODEL.PANEXT
        channels = {s.channels for s in input_shape}
        if len(channels) != 1:
            raise ValueError(f"kernel-head levels must share a width, got {sorted(channels)}")
        return {
            "in_channels": channels.pop(),
            "kernel_dim": P.KERNEL_DIM,
            "num_convs": P.KERNEL_HEAD.NUM_CONVS,
            "convs_dim": P.KERNEL_HEAD.CONVS_DIM,
            "coord": P.KERNEL_HEAD.COORD,
            "norm": P.KERNEL_HEAD.NORM,
        }

    def forward(self, features: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.out(self.convs(coord_features(x) if self.coord else x)) for x in features]


class PositionHead(nn.Module):
    """Deformable conv stack -> thing-center logits (one map per thing class) and
    stuff-region logits (one map per stuff class) per level."""

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_thing_classes: int,
        num_stuff_classes: int,
        num_convs: int,
        convs_dim: int,
        deform: bool,
        norm: str,
        prior_prob: float,
        deform_impl: str = "auto",
    ):
        """
        Args:
            in_channels: channels of the input levels (by config: those of the first
                ``MODEL.PANEXT.KERNEL_IN_FEATURES`` level).
            num_thing_classes: thing classes C_th, one center-heatmap channel each;
                ``MODEL.PANEXT.NUM_THING_CLASSES``.
            num_stuff_classes: stuff classes C_st, one region map each;
                ``MODEL.PANEXT.NUM_STUFF_CLASSES``.
            num_convs: number of 3x3 conv-norm-ReLU layers shared by both outputs;
                ``MODEL.PANEXT.POSITION_HEAD.NUM_CONVS``.
            convs_dim: channels of those convs; ``MODEL.PANEXT.POSITION_HEAD.CONVS_DIM``.
            deform: whether those convs are deformable (offsets from a zero-initialised conv);
                ``MODEL.PANEXT.POSITION_HEAD.DEFORM``.
            norm: norm of the convs ("GN"; "" for none); ``MODEL.PANEXT.POSITION_HEAD.NORM``.
            prior_prob: initial sigmoid probability of both outputs: their bias is
                -log((1 - p) / p); ``MODEL.PANEXT.POSITION_HEAD.PRIOR_PROB``.
            deform_impl: deformable conv operator, "auto" (fast on CPU, torchvision on CUDA),
                "fast" or "torchvision"; same parameters for all three.
                ``MODEL.PANEXT.POSITION_HEAD.DEFORM_IMPL``.
        """
        super().__init__()
        self.convs = ConvStack(
            in_channels, convs_dim, num_convs, norm, deform=deform, deform_impl=deform_impl
        )
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.thing_out = init_conv(nn.Conv2d(convs_dim, num_thing_classes, 3, padding=1), bias=bias)
        self.stuff_out = init_conv(nn.Conv2d(convs_dim, num_stuff_classes, 3, padding=1), bias=bias)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        P = cfg.MODEL.PANEXT
        return {
            "in_channels": input_shape[0].channels,
            "num_thing_classes": P.NUM_THING_CLASSES,
            "num_stuff_classes": P.NUM_STUFF_CLASSES,
            "num_convs": P.POSITION_HEAD.NUM_CONVS,
            "convs_dim": P.POSITION_HEAD.CONVS_DIM,
            "deform": P.POSITION_HEAD.DEFORM,
            "deform_impl": P.POSITION_HEAD.DEFORM_IMPL,
            "norm": P.POSITION_HEAD.NORM,
            "prior_prob": P.POSITION_HEAD.PRIOR_PROB,
        }

    def forward(
        self, features: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        hidden = [self.convs(x) for x in features]
        return [self.thing_out(h) for h in hidden], [self.stuff_out(h) for h in hidden]
