"""SSD box coder: center / size offsets of a box relative to its default box, scaled by
``weights`` (TF OD API ``faster_rcnn_box_coder`` scale factors y 10, x 10, h 5, w 5, i.e.
the SSD paper's variances 0.1 / 0.2):

    dx = wx (x - x_a) / w_a,  dy = wy (y - y_a) / h_a,
    dw = ww log(w / w_a),     dh = wh log(h / h_a).

Our order is (dx, dy, dw, dh), detectron2's; TF's is (dy, dx, dh, dw). detectron2's
``Box2BoxTransform`` computes the same offsets, but without the TF OD API's epsilon on the
sizes (a degenerate box gives -inf) and for (N, 4) tensors only (here any leading shape
broadcasts against the default boxes), hence this class.
"""

import math
from typing import Sequence

import torch

__all__ = ["SSDBoxCoder"]

# Largest log-scale decoded (detectron2's _DEFAULT_SCALE_CLAMP), so exp() cannot overflow.
_SCALE_CLAMP = math.log(1000.0 / 16)
# Added to sizes before the log, as the TF OD API does, so degenerate boxes stay finite.
_EPS = 1e-8


def _center_size(boxes: torch.Tensor):
    wh = boxes[..., 2:] - boxes[..., :2]
    return boxes[..., :2] + 0.5 * wh, wh


class SSDBoxCoder:
    def __init__(
        self, weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0), scale_clamp: float = _SCALE_CLAMP
    ):
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def encode(self, boxes: torch.Tensor, default_boxes: torch.Tensor) -> torch.Tensor:
        """XYXY ``boxes`` (..., 4) relative to broadcastable XYXY ``default_boxes`` ->
        (..., 4) offsets (dx, dy, dw, dh)."""
        ctr, wh = _center_size(boxes)
        actr, awh = _center_size(default_boxes)
        awh = awh + _EPS
        w = boxes.new_tensor(self.weights)
        dxy = (ctr - actr) / awh
        dwh = torch.log((wh + _EPS) / awh)
        return torch.cat([dxy, dwh], -1) * w

    def decode(self, deltas: torch.Tensor, default_boxes: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`: (..., 4) offsets -> (..., 4) XYXY boxes."""
        actr, awh = _center_size(default_boxes.to(deltas.dtype))
        d = deltas / deltas.new_tensor(self.weights)
        ctr = actr + d[..., :2] * awh
        wh = awh * torch.exp(d[..., 2:].clamp(max=self.scale_clamp))
        return torch.cat([ctr - 0.5 * wh, ctr + 0.5 * wh], -1)
