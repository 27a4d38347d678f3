"""Encompassing boxes on a feature grid (Kolhatkar (2020) §3.1.3).

A box is grown outwards to the cell boundaries of a feature map, so it can be cropped
without interpolation; its *shape* is its (height, width) in cells. SSD-ISB uses a 640x640
input and its stride-32 map, a 20x20 grid: an image of any size is resized to the input, so
a coordinate ``x`` of a W-wide image falls in cell ``x / W * 20``.
"""
import numpy as np

# Table 5.1 / Single-Shape branch shapes, (height, width) in cells of the 20x20 map.
ISB_SHAPES = (
    (7, 2), (6, 3), (6, 2), (5, 3), (5, 2), (4, 3),
    (4, 2), (3, 3), (3, 2), (3, 1), (2, 2), (2, 1),
)


def encompassing_cells(boxes, image_size, grid_size=(20, 20), eps=1e-6):
    """Cell box (x0, y0, x1, y1), end-exclusive, enclosing each XYXY box.

    Args:
        boxes: (N, 4) XYXY boxes in pixels.
        image_size: (H, W) of the image the boxes live in, or an (N, 2) array of sizes.
        grid_size: (rows, cols) of the feature grid the image maps onto.
        eps: tolerance in cells, so a coordinate on a cell boundary up to float error
            does not take one more cell.

    Returns:
        (N, 4) int64 cell boxes clipped to the grid, each at least one cell wide and high.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    hw = np.broadcast_to(np.asarray(image_size, dtype=np.float64), (len(boxes), 2))
    grid = np.asarray(grid_size, dtype=np.float64)[::-1]  # (cols, rows) to match (x, y)
    scale = grid / hw[:, ::-1]
    lo = np.clip(np.floor(boxes[:, :2] * scale + eps), 0, grid - 1)
    hi = np.clip(np.maximum(np.ceil(boxes[:, 2:] * scale - eps), lo + 1), 1, grid)
    return np.concatenate([lo, hi], axis=1).astype(np.int64)


def cell_shapes(boxes, image_size, grid_size=(20, 20)):
    """(N, 2) int64 (height, width) in cells of each box's encompassing box."""
    cells = encompassing_cells(boxes, image_size, grid_size)
    return np.stack([cells[:, 3] - cells[:, 1], cells[:, 2] - cells[:, 0]], axis=1)


def match_shapes(shapes, table=ISB_SHAPES):
    """(N, S) bool: ``shapes[n] == table[s]``."""
    shapes = np.asarray(shapes).reshape(-1, 2)
    return (shapes[:, None, :] == np.asarray(table).reshape(-1, 2)[None]).all(-1)
