import numpy as np

import torch

from panext_d2.data.builders.cells import ISB_SHAPES, cell_shapes, match_shapes
from panext_d2.modeling.isb.encompassing import encompassing_cells


def test_encompassing_cells_on_640_input():
    boxes = [
        [0, 0, 32, 32],  # exactly one cell
        [0, 0, 33, 32],  # one pixel into the next column
        [31.9, 0, 32.1, 10],  # straddles a boundary: two cells wide
        [32, 32, 64, 96],
        [32, 0, 32, 10],  # zero width on a boundary: still one cell
        [600, 600, 700, 700],  # leaves the image: clipped
    ]
    cells = encompassing_cells(torch.tensor(boxes), (640, 640), (20, 20))
    np.testing.assert_array_equal(
        cells.numpy(),
        [
            [0, 0, 1, 1],
            [0, 0, 2, 1],
            [0, 0, 2, 1],
            [1, 1, 2, 3],
            [1, 0, 2, 1],
            [18, 18, 20, 20],
        ],
    )
    np.testing.assert_array_equal(
        cell_shapes(boxes, (640, 640)), [[1, 1], [1, 2], [1, 2], [2, 1], [1, 1], [2, 2]]
    )


def test_cell_shapes_scale_each_axis_to_the_grid():
    # Cell boundaries hit up to float error take no extra cell; rows and columns scale apart.
    assert cell_shapes([[0, 0, 30, 30]], (300, 300)).tolist() == [[2, 2]]
    # 77 / 154 * 20 = 9.999999999999998 and 87 / 116 * 20 = 15.000000000000002 in floats
    assert cell_shapes([[77, 0, 154, 87]], (116, 154)).tolist() == [[15, 10]]
    assert cell_shapes([[0, 0, 64, 48]], (480, 640)).tolist() == [[2, 2]]
    assert cell_shapes([[0, 0, 64, 48]], (640, 480)).tolist() == [[2, 3]]
    per_box = cell_shapes([[0, 0, 10, 10], [0, 0, 10, 10]], [[10, 10], [100, 100]])
    assert per_box.tolist() == [[20, 20], [2, 2]]
    assert cell_shapes([[0, 0, 160, 320]], (640, 640), grid_size=(10, 10)).tolist() == [[5, 3]]


def test_match_shapes():
    match = match_shapes([[7, 2], [2, 7], [1, 1], [3, 1]])
    assert match.shape == (4, len(ISB_SHAPES))
    assert match.any(axis=1).tolist() == [True, False, False, True]
    assert match[3, ISB_SHAPES.index((3, 1))]
