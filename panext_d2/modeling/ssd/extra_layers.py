"""SSD extra feature layers after the backbone (Kolhatkar (2020) §3.1.1, Fig. 3.1; TF OD API
``ssd_mobilenet_v1`` feature extractor, ``multi_resolution_feature_maps`` with
``insert_1x1_conv``): each extra map is a 1x1 conv to half the depth, then a 3x3 stride-2
conv to the depth, both followed by BN + activation. Default depths 512/256/256/128 turn a
20x20 stride-32 map (640 input) into 10, 5, 3, 2 (and 10 into 5, 3, 2, 1 at 300).
"""

from typing import List, Sequence

from torch import nn

from panext_d2.layers.conv_block import conv_norm_act

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
                    conv_norm_act(in_channels, mid, 1, norm=norm, activation=activation, init=None),
                    conv_norm_act(mid, out, 3, stride=2, norm=norm, activation=activation, init=None),
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
