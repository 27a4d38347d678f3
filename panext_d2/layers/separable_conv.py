"""Depthwise-separable convolution (Kolhatkar (2020) §2.3.4, Fig. 2.8).

A ``k x k`` depthwise convolution (one filter per input channel) followed by a ``1 x 1``
pointwise convolution. Each part is a detectron2 :class:`~detectron2.layers.Conv2d`, so each
can carry its own normalisation and activation:

* MobileNet-v1's "conv dw" layer (Table 2.5): both parts followed by BN + activation, no
  biases (``norm="BN"``, ``activation="relu6"``);
* the ISB's 3x3 separable conv (docs/DESIGN.md §2): no normalisation, depthwise without bias,
  pointwise with bias (``norm=""``, ``pointwise_bias=True``).
"""

from typing import Optional

from torch import nn

from detectron2.layers import Conv2d, get_norm

from .activation import get_activation

__all__ = ["SeparableConv2d"]


class SeparableConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm: str = "",
        activation: str = "",
        depthwise_bias: Optional[bool] = None,
        pointwise_bias: Optional[bool] = None,
    ):
        """
        Args:
            norm: detectron2 norm name for both parts ("BN", "FrozenBN", "SyncBN", "" = none).
            activation: name for :func:`get_activation` after both parts ("" = none).
            depthwise_bias / pointwise_bias: default: a bias only where there is no norm.
        """
        super().__init__()
        if depthwise_bias is None:
            depthwise_bias = not norm
        if pointwise_bias is None:
            pointwise_bias = not norm
        self.depthwise = Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=in_channels,
            bias=depthwise_bias,
            norm=get_norm(norm, in_channels),
            activation=get_activation(activation),
        )
        self.pointwise = Conv2d(
            in_channels,
            out_channels,
            1,
            bias=pointwise_bias,
            norm=get_norm(norm, out_channels),
            activation=get_activation(activation),
        )

    def forward(self, x):
        return self.pointwise(self.depthwise(x))
