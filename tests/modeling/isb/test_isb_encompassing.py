import numpy as np
import pytest
import torch
from torch.nn import functional as F

from panext_d2.modeling.isb import cell_shapes, crop_cells, crop_resize_cells, encompassing_cells


def _reference_cells(boxes, image_size, grid_size=(20, 20), eps=1e-6):
    """The encompassing cells in float64 numpy, written from the definition: floor / ceil of
    the box corners in cells, clipped to the grid, at least one cell each way."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    hw = np.broadcast_to(np.asarray(image_size, dtype=np.float64), (len(boxes), 2))
    grid = np.asarray(grid_size, dtype=np.float64)[::-1]
    scale = grid / hw[:, ::-1]
    lo = np.clip(np.floor(boxes[:, :2] * scale + eps), 0, grid - 1)
    hi = np.clip(np.maximum(np.ceil(boxes[:, 2:] * scale - eps), lo + 1), 1, grid)
    return np.concatenate([lo, hi], axis=1).astype(np.int64)


def _random_boxes(rng, n, height, width, on_edges=False):
    """XYXY boxes inside (height, width); with on_edges, coordinates exactly on stride-32
    cell edges (the float-error case the eps tolerance exists for)."""
    if on_edges:
        x = rng.integers(0, width // 32 + 1, size=(n, 2)) * 32.0
        y = rng.integers(0, height // 32 + 1, size=(n, 2)) * 32.0
    else:
        x = rng.uniform(0, width, size=(n, 2))
        y = rng.uniform(0, height, size=(n, 2))
    x.sort(1)
    y.sort(1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def test_agrees_with_a_float64_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    for height, width, grid in [(640, 640, (20, 20)), (480, 640, (20, 20)), (427, 640, (7, 9))]:
        for on_edges in (False, True):
            boxes = _random_boxes(rng, 500, height, width, on_edges)
            expected = _reference_cells(boxes, (height, width), grid)
            got = encompassing_cells(torch.from_numpy(boxes).float(), (height, width), grid)
            np.testing.assert_array_equal(got.numpy(), expected)
            np.testing.assert_array_equal(
                cell_shapes(got).numpy(),
                np.stack([expected[:, 3] - expected[:, 1], expected[:, 2] - expected[:, 0]], 1),
            )


def test_per_box_image_sizes_agree_with_the_reference():
    rng = np.random.default_rng(1)
    sizes = rng.integers(100, 900, size=(200, 2)).astype(np.float64)
    boxes = np.concatenate([_random_boxes(rng, 1, h, w) for h, w in sizes])
    expected = _reference_cells(boxes, sizes)
    got = encompassing_cells(torch.from_numpy(boxes), torch.from_numpy(sizes), (20, 20))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_encompassing_box_contains_box_and_lies_on_cell_edges():
    rng = np.random.default_rng(2)
    boxes = torch.from_numpy(_random_boxes(rng, 2000, 640, 640)).float()
    cells = encompassing_cells(boxes, (640, 640), (20, 20))
    assert cells.dtype == torch.int64
    pixels = cells.double() * 32  # integer cells: on cell edges by construction
    assert (pixels[:, :2] <= boxes[:, :2].double() + 1e-3).all()
    assert (pixels[:, 2:] >= boxes[:, 2:].double() - 1e-3).all()
    # Tight: shrinking any side by one cell would cut the box (unless it is one cell wide).
    shapes = cell_shapes(cells)
    assert (shapes >= 1).all() and (cells[:, 2:] <= 20).all() and (cells[:, :2] >= 0).all()
    wide = shapes[:, 1] > 1
    assert (pixels[wide, 0] + 32 > boxes[wide, 0].double() - 1e-3).all()
    assert (pixels[wide, 2] - 32 < boxes[wide, 2].double() + 1e-3).all()


def test_box_on_cell_edges_keeps_its_cells():
    boxes = torch.tensor([[64.0, 32.0, 128.0, 96.0], [0.0, 0.0, 640.0, 640.0], [5.0, 5.0, 5.0, 5.0]])
    cells = encompassing_cells(boxes, (640, 640), (20, 20))
    assert cells.tolist() == [[2, 1, 4, 3], [0, 0, 20, 20], [0, 0, 1, 1]]
    assert cell_shapes(cells).tolist() == [[2, 2], [20, 20], [1, 1]]


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, 20 * s, 20 * s, generator=g) for c, s in ((5, 1), (4, 2), (3, 4))]


def test_exact_crops_equal_slices_at_every_stride():
    feats = _features()
    cells = torch.tensor([[0, 0, 3, 2], [17, 18, 20, 20], [5, 7, 8, 9]])
    image_index = torch.tensor([0, 1, 1])
    for feat, scale in zip(feats, (1, 2, 4)):
        crops = crop_cells(feat, image_index, cells, (2, 3), scale)
        assert crops.shape == (3, feat.shape[1], 2 * scale, 3 * scale)
        for k, (x0, y0, x1, y1) in enumerate(cells.tolist()):
            ref = feat[image_index[k], :, y0 * scale : y1 * scale, x0 * scale : x1 * scale]
            torch.testing.assert_close(crops[k], ref, rtol=0, atol=0)


def test_crop_resize_equals_crop_then_interpolate():
    feats = _features(1)
    rng = np.random.default_rng(3)
    lo = rng.integers(0, 15, size=(40, 2))
    hi = lo + rng.integers(1, 6, size=(40, 2))
    cells = torch.from_numpy(np.concatenate([lo, hi], 1)).long()
    image_index = torch.from_numpy(rng.integers(0, 2, size=40)).long()
    # Small boxes at the far edges next to a large one: their pooled-crop windows (as large
    # as the large box) are moved back inside the map.
    cells = torch.cat([cells, torch.tensor([[17, 18, 19, 20], [18, 0, 20, 3], [2, 3, 12, 15]])])
    image_index = torch.cat([image_index, torch.tensor([1, 1, 1])])
    for out in [(4, 3), (1, 1), (7, 2)]:
        if out == (7, 2):  # a box over the whole map: pooled crops read the map itself
            cells = torch.cat([cells, torch.tensor([[0, 0, 20, 20]])])
            image_index = torch.cat([image_index, torch.tensor([0])])
        for feat, scale in zip(feats, (1, 2, 4)):
            for pool in (False, True):
                got = crop_resize_cells(feat, image_index, cells, out, scale, pool=pool)
                size = (out[0] * scale * (1 + pool), out[1] * scale * (1 + pool))
                for k, (x0, y0, x1, y1) in enumerate(cells.tolist()):
                    crop = feat[image_index[k], None, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale]
                    ref = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
                    if pool:
                        ref = F.max_pool2d(ref, 2)
                    # grid_sample on the whole map: float32 coordinates, rounding ~ map size * eps
                    torch.testing.assert_close(got[k], ref[0], rtol=1e-4, atol=1e-4)
                # A batch of one image takes the single-map path: same crops.
                first = torch.nonzero(image_index == 0, as_tuple=True)[0]
                alone = crop_resize_cells(feat[:1], image_index[first], cells[first], out, scale, pool=pool)
                torch.testing.assert_close(alone, got[first])


def test_crop_resize_is_identity_for_boxes_of_the_target_shape():
    feats = _features(2)
    cells = torch.tensor([[3, 4, 6, 8], [0, 16, 3, 20]])
    index = torch.tensor([1, 0])
    for feat, scale in zip(feats, (1, 2, 4)):
        torch.testing.assert_close(
            crop_resize_cells(feat, index, cells, (4, 3), scale), crop_cells(feat, index, cells, (4, 3), scale)
        )


@pytest.mark.parametrize("pool", [False, True])
def test_crops_under_bfloat16_autocast_for_several_images(pool):
    feat = torch.randn(2, 4, 20, 20)
    cells = torch.tensor([[1, 1, 4, 3], [5, 6, 9, 12], [0, 0, 20, 20]])
    index = torch.tensor([1, 0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = crop_resize_cells(feat, index, cells, (5, 5), pool=pool)
    ref = crop_resize_cells(feat, index, cells, (5, 5), pool=pool)
    torch.testing.assert_close(got.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("pool", [False, True])
def test_crops_carry_gradients_to_the_feature_map(pool):
    feat = torch.randn(1, 2, 20, 20, requires_grad=True)
    cells = torch.tensor([[1, 1, 4, 3]])
    crop_resize_cells(feat, torch.tensor([0]), cells, (5, 5), pool=pool).sum().backward()
    assert (feat.grad[0, :, 1:3, 1:4].abs() > 0).any()
    outside = torch.ones(20, 20, dtype=torch.bool)
    outside[1:3, 1:4] = False
    # grid_sample's float32 coordinates may leak ~1e-7 onto the box's neighbours.
    assert feat.grad[0][:, outside].abs().max() <= 1e-5 * feat.grad.abs().max()
