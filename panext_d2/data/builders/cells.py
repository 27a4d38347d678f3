"""Encompassing-box shapes of dataset boxes on SSD-ISB's feature grid (Kolhatkar (2020)
§3.1.3), for the builders: numpy in and out around the model's own computation
(:func:`panext_d2.modeling.isb.encompassing.encompassing_cells`), so the datasets and the
model cannot disagree. An image of any size is resized to the 640x640 input, so a coordinate
``x`` of a W-wide image falls in cell ``x / W * 20`` of the stride-32 map.
"""
import numpy as np
import torch

from ...config.isb import ISB_SHAPES
from ...modeling.isb.encompassing import cell_shapes as _cell_shapes
from ...modeling.isb.encompassing import encompassing_cells

__all__ = ["ISB_SHAPES", "cell_shapes", "match_shapes"]


def cell_shapes(boxes, image_size, grid_size=(20, 20)) -> np.ndarray:
    """(N, 2) int64 (height, width) in cells of each XYXY box's encompassing box, for boxes
    of an image of ``image_size`` (H, W), or of per-box sizes (N, 2)."""
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    sizes = torch.as_tensor(np.asarray(image_size, dtype=np.float64))
    return _cell_shapes(encompassing_cells(boxes, sizes, grid_size)).numpy()


def match_shapes(shapes, table=ISB_SHAPES) -> np.ndarray:
    """(N, S) bool: ``shapes[n] == table[s]``."""
    shapes = np.asarray(shapes).reshape(-1, 2)
    return (shapes[:, None, :] == np.asarray(table).reshape(-1, 2)[None]).all(-1)
