"""SSD extra feature layers after the backbone (Kolhatkar (2020) §3.1.1, Fig. 3.1; TF OD API
``ssd_mobilenet_v1`` feature extractor, ``multi_resolution_feature_maps`` with
``insert_1x1_conv``): each extra map is a 1x1 conv to half the depth, then a 3x3 stride-2
conv to the depth, both followed by BN + activation. Default depths 512/256/256/128 turn a
20x20 stride-32 map (640 input) into 10, 5, 3, 2 (and 10 into 5, 3, 2, 1 at 300).
"""

from typing import List, Sequence

from torch import nn

from detectron2.layers import Conv2d, get_norm

from panext_d2.layers.activation import get_activation

__all__ = ["SSDExtraLayers", "ssd_depth"]


def ssd_depth(depth: float, depth_multiplier: float, min_depth: int) -> int:
    """TF OD API feature-extractor depth rule: ``max(int(depth * multiplier), min_depth)``."""
    return max(int(depth * depth_multiplier), min_depth)


class SSDExtraLayers(nn.Module):
    def __init__(
        self,
        in_channels: int,
        depths: Sequence[int] = (512, 256, 256, 128),
        depth_multiplier: float = 1.0,
        min_depth: int = 16,
        norm: str = "BN",
        activation: str = "relu6",
    ):
        super().__init__()
        self.out_channels: List[int] = []
        layers = []
        for depth in depths:
            mid = ssd_depth(int(depth / 2), depth_multiplier, min_depth)
            out = ssd_depth(depth, depth_multiplier, min_depth)
            layers.append(
                nn.Sequential(
                    Conv2d(
                        in_channels,
                        mid,
                        1,
                        bias=not norm,
                        norm=get_norm(norm, mid),
                        activation=get_activation(activation),
                    ),
                    Conv2d(
                        mid,
                        out,
                        3,
                        stride=2,
                        padding=1,
                        bias=not norm,
                        norm=get_norm(norm, out),
                        activation=get_activation(activation),
                    ),
                )
            )
            self.out_channels.append(out)
            in_channels = out
        self.layers = nn.ModuleList(layers)

    def forward(self, x) -> List:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs
