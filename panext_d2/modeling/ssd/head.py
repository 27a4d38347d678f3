"""SSD box predictor: per feature map, one conv for class logits and one for box offsets
(with bias, no BN, no activation; TF OD API ``convolutional_box_predictor`` with
``num_layers_before_predictor: 0``). Outputs are flattened in (map, row, column, box) order,
the order of :class:`~panext_d2.modeling.ssd.default_boxes.DefaultBoxGenerator`.
"""

from typing import List, Sequence, Tuple

import torch
from torch import nn

from panext_d2.layers.norm import truncated_normal_init_

__all__ = ["SSDPredictor"]


class SSDPredictor(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        num_boxes: Sequence[int],
        num_classes: int,
        kernel_size: int = 1,
        init_std: float = 0.03,
    ):
        """
        Args:
            in_channels / num_boxes: per feature map.
            num_classes: foreground classes; the classifier has ``num_classes + 1`` outputs.
        """
        super().__init__()
        self.num_classes = num_classes
        pad = kernel_size // 2
        self.cls_convs = nn.ModuleList(
            nn.Conv2d(c, a * (num_classes + 1), kernel_size, padding=pad)
            for c, a in zip(in_channels, num_boxes)
        )
        self.box_convs = nn.ModuleList(
            nn.Conv2d(c, a * 4, kernel_size, padding=pad) for c, a in zip(in_channels, num_boxes)
        )
        truncated_normal_init_(self, init_std)

    @staticmethod
    def _flatten(x: torch.Tensor, size: int) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(n, -1, size)

    def forward(self, maps: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns logits (N, A, K + 1) and offsets (N, A, 4)."""
        k = self.num_classes + 1
        logits = torch.cat([self._flatten(c(x), k) for c, x in zip(self.cls_convs, maps)], 1)
        deltas = torch.cat([self._flatten(b(x), 4) for b, x in zip(self.box_convs, maps)], 1)
        return logits, deltas
