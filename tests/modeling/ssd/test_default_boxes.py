import math

import pytest
import torch

from panext_d2.modeling.ssd import DefaultBoxGenerator, default_box_specs

RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


def _formula_scales(m, s_min=0.2, s_max=0.9):
    # eq. 3.1 of Kolhatkar (2020), k = 1..m
    return [s_min + (s_max - s_min) * (k - 1) / (m - 1) for k in range(1, m + 1)]


@pytest.mark.parametrize("size,grids", [(300, [19, 10, 5, 3, 2, 1]), (640, [40, 20, 10, 5, 3, 2])])
@pytest.mark.parametrize("reduce_lowest", [True, False])
def test_counts_per_map(size, grids, reduce_lowest):
    gen = DefaultBoxGenerator(6, reduce_boxes_in_lowest_layer=reduce_lowest)
    per_cell = [3 if (k == 0 and reduce_lowest) else len(RATIOS) + 1 for k in range(6)]
    assert gen.num_boxes_per_location == per_cell
    boxes = gen([(g, g) for g in grids], (size, size))
    assert boxes.shape == (sum(g * g * a for g, a in zip(grids, per_cell)), 4)
    expected_total = {(300, True): 1917, (300, False): 3000, (640, True): 8028, (640, False): 12828}
    assert boxes.shape[0] == expected_total[(size, reduce_lowest)]


def test_scales_follow_eq_3_1_plus_interpolated():
    specs = default_box_specs(6, 0.2, 0.9, RATIOS, True, reduce_boxes_in_lowest_layer=False)
    scales = _formula_scales(6) + [1.0]
    for k, layer in enumerate(specs):
        assert [s for s, _ in layer[:5]] == pytest.approx([scales[k]] * 5)
        assert [a for _, a in layer[:5]] == pytest.approx(list(RATIOS))
        assert layer[5] == pytest.approx((math.sqrt(scales[k] * scales[k + 1]), 1.0))
    reduced = default_box_specs(6, 0.2, 0.9, RATIOS, True, reduce_boxes_in_lowest_layer=True)
    assert reduced[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert reduced[1:] == specs[1:]


def test_coordinates_by_hand():
    gen = DefaultBoxGenerator(6)
    boxes = gen([(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], (300, 300))
    c = 0.5 / 19 * 300  # first cell centre
    # first cell, scale 0.1 ratio 1: 30 x 30 px
    torch.testing.assert_close(boxes[0], torch.tensor([c - 15, c - 15, c + 15, c + 15]))
    # first cell, scale 0.2 ratio 2: w = 0.2 sqrt(2) 300, h = 0.2 / sqrt(2) 300
    w, h = 0.2 * math.sqrt(2) * 300, 0.2 / math.sqrt(2) * 300
    torch.testing.assert_close(boxes[1], torch.tensor([c - w / 2, c - h / 2, c + w / 2, c + h / 2]))
    # second cell of the first row: x centre moves by one cell (300 / 19), box order (row, col, box)
    torch.testing.assert_close(boxes[3, 0] - boxes[0, 0], torch.tensor(300 / 19))
    # next row starts after 19 cells x 3 boxes
    torch.testing.assert_close(boxes[19 * 3, 1] - boxes[0, 1], torch.tensor(300 / 19))
    # last box: 1x1 map, interpolated scale sqrt(0.9 * 1.0), centred
    half = math.sqrt(0.9) * 300 / 2
    torch.testing.assert_close(
        boxes[-1], torch.tensor([150 - half, 150 - half, 150 + half, 150 + half])
    )
    # the 1x1 map's ratio-3 box: w = 0.9 sqrt(3) 300
    w, h = 0.9 * math.sqrt(3) * 300, 0.9 / math.sqrt(3) * 300
    torch.testing.assert_close(
        boxes[-3], torch.tensor([150 - w / 2, 150 - h / 2, 150 + w / 2, 150 + h / 2])
    )


def test_non_square_input_and_cache():
    gen = DefaultBoxGenerator(
        2,
        min_scale=0.2,
        max_scale=0.9,
        reduce_boxes_in_lowest_layer=False,
        aspect_ratios=(1.0,),
        interpolated_scale=False,
    )
    boxes = gen([(2, 4), (1, 2)], (64, 128))
    assert boxes.shape == (2 * 4 + 1 * 2, 4)
    torch.testing.assert_close(boxes[0], torch.tensor([16 - 12.8, 16 - 6.4, 16 + 12.8, 16 + 6.4]))
    assert gen([(2, 4), (1, 2)], (64, 128)) is boxes
    with torch.inference_mode():
        cached = gen([(3, 3)] * 2, (30, 30))
    assert not cached.is_inference()
    clipped = DefaultBoxGenerator(1, clip=True, reduce_boxes_in_lowest_layer=False)(
        [(1, 1)], (10, 10)
    )
    assert clipped.min() >= 0 and clipped.max() <= 10
