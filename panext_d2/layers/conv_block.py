"""One convolution + normalisation + activation, detectron2-style (``Conv2d`` with ``norm``
and ``activation``), with a bias only when there is no normalisation."""
from typing import Optional

from detectron2.layers import Conv2d, get_norm
from fvcore.nn import weight_init

from .activation import get_activation

__all__ = ["conv_norm_act"]


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    norm: str = "",
    activation: Optional[str] = "relu",
    init: Optional[str] = "msra",
) -> Conv2d:
    """A ``kernel_size`` conv ("same" padding for odd kernels) -> ``norm`` -> ``activation``
    (a name for :func:`get_activation`; "" / None: none), initialised with fvcore's
    ``c2_msra_fill`` ("msra") or ``c2_xavier_fill`` ("xavier"), or PyTorch's default (None)."""
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=get_activation(activation),
    )
    if init:
        {"msra": weight_init.c2_msra_fill, "xavier": weight_init.c2_xavier_fill}[init](conv)
    return conv
