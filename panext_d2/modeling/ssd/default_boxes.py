"""SSD default boxes (Kolhatkar (2020) §3.1.1, Fig. 3.2; TF OD API ``ssd_anchor_generator``).

Map k of m gets scale ``s_k = s_min + (s_max - s_min)(k - 1)/(m - 1)`` (eq. 3.1) and, per
cell, one box per aspect ratio a (width ``s_k sqrt(a)``, height ``s_k / sqrt(a)``, relative
to the image side) plus, optionally, a ratio-1 box of scale ``sqrt(s_k s_(k+1))`` with
``s_(m+1) = 1``. With ``reduce_boxes_in_lowest_layer`` (TF OD API default) the first map
only gets ``(0.1, 1), (s_1, 2), (s_1, 1/2)``. Boxes are centred on their cell,
``((x + 0.5) / W_k, (y + 0.5) / H_k)``, and returned in absolute XYXY pixels of the
(padded) input, ordered map by map, then row, column, box, the order of the predictor's
flattened outputs.
"""

import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ["default_box_specs", "DefaultBoxGenerator"]


def default_box_specs(
    num_maps: int,
    min_scale: float,
    max_scale: float,
    aspect_ratios: Sequence[float],
    interpolated_scale: bool = True,
    reduce_boxes_in_lowest_layer: bool = True,
) -> List[List[Tuple[float, float]]]:
    """``(scale, aspect_ratio)`` pairs of each map's boxes (TF OD API ``create_ssd_anchors``)."""
    if num_maps == 1:
        scales = [min_scale]
    else:
        scales = [min_scale + (max_scale - min_scale) * k / (num_maps - 1) for k in range(num_maps)]
    scales.append(1.0)
    specs = []
    for k in range(num_maps):
        scale, scale_next = scales[k], scales[k + 1]
        if k == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        layer = [(scale, float(a)) for a in aspect_ratios]
        if interpolated_scale:
            layer.append((math.sqrt(scale * scale_next), 1.0))
        specs.append(layer)
    return specs


class DefaultBoxGenerator(nn.Module):
    """Default boxes for a list of feature-map sizes and an input size, cached by shape."""

    def __init__(
        self,
        num_maps: int,
        min_scale: float = 0.2,
        max_scale: float = 0.9,
        aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
        interpolated_scale: bool = True,
        reduce_boxes_in_lowest_layer: bool = True,
        clip: bool = False,
    ):
        super().__init__()
        self.specs = default_box_specs(
            num_maps,
            min_scale,
            max_scale,
            aspect_ratios,
            interpolated_scale,
            reduce_boxes_in_lowest_layer,
        )
        self.clip = clip
        for k, layer in enumerate(self.specs):
            spec = torch.tensor(layer, dtype=torch.float64)
            # Relative (width, height) of each box: s sqrt(a), s / sqrt(a).
            wh = torch.stack([spec[:, 0] * spec[:, 1].sqrt(), spec[:, 0] / spec[:, 1].sqrt()], 1)
            self.register_buffer(f"wh{k}", wh.float(), persistent=False)
        self._cache: Dict[tuple, torch.Tensor] = {}

    @property
    def num_boxes_per_location(self) -> List[int]:
        return [len(layer) for layer in self.specs]

    def _grid_boxes(self, k: int, grid: Tuple[int, int], image_size: Tuple[int, int]):
        (gh, gw), (ih, iw) = grid, image_size
        wh = getattr(self, f"wh{k}")
        device = wh.device
        cy = (torch.arange(gh, device=device, dtype=torch.float32) + 0.5) * (ih / gh)
        cx = (torch.arange(gw, device=device, dtype=torch.float32) + 0.5) * (iw / gw)
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centers = torch.stack([cx, cy, cx, cy], -1).reshape(gh, gw, 1, 4)
        half = (wh * wh.new_tensor([iw, ih])) / 2
        offsets = torch.cat([-half, half], 1).reshape(1, 1, -1, 4)
        return (centers + offsets).reshape(-1, 4)

    def forward(self, grid_sizes: Sequence[Tuple[int, int]], image_size: Tuple[int, int]):
        """
        Args:
            grid_sizes: (H_k, W_k) of each feature map.
            image_size: (H, W) of the network input.
        Returns:
            Tensor (sum_k H_k W_k A_k, 4): XYXY boxes in input pixels.
        """
        if len(grid_sizes) != len(self.specs):
            raise ValueError(f"expected {len(self.specs)} feature maps, got {len(grid_sizes)}")
        key = (
            tuple(tuple(int(v) for v in g) for g in grid_sizes),
            tuple(int(v) for v in image_size),
        )
        key = key + (self.wh0.device,)
        boxes = self._cache.get(key)
        if boxes is None:
            # Normal tensors even under inference_mode, so the cache also serves training.
            with torch.inference_mode(False), torch.no_grad():
                boxes = torch.cat([self._grid_boxes(k, g, key[1]) for k, g in enumerate(key[0])], 0)
                if self.clip:
                    ih, iw = key[1]
                    boxes = torch.min(boxes.clamp(min=0), boxes.new_tensor([iw, ih, iw, ih]))
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = boxes
        return boxes

    def _apply(self, fn, *args, **kwargs):
        # Moving / casting the module invalidates cached boxes.
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)
