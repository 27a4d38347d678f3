import pytest
import torch
from torch.nn import functional as F

from detectron2.structures import BitMasks, PolygonMasks

from panext_d2.modeling.isb import (
    isb_mask_loss,
    mask_targets,
    pad_mask_logits,
    paste_mask_logits,
    rasterize_masks,
)


def test_targets_are_the_gt_mask_cropped_to_the_box_and_resized():
    masks = torch.zeros(2, 64, 64)
    masks[0, 8:24, 16:48] = 1  # fills the left half of box 0
    masks[1, 32:64, 32:64] = 1
    boxes = torch.tensor([[16.0, 8.0, 80.0, 24.0], [32.0, 32.0, 64.0, 64.0]])
    t = mask_targets(masks, torch.tensor([0, 1]), boxes, (4, 8))
    assert t.shape == (2, 4, 8)
    assert t[0, :, :4].eq(1).all() and t[0, :, 4:].eq(0).all()
    assert t[1].eq(1).all()
    # Same box, another mask of the batch.
    t2 = mask_targets(masks, torch.tensor([1]), boxes[:1], (4, 8))
    assert t2.eq(0).all()
    assert mask_targets(masks, torch.zeros(0, dtype=torch.long), boxes[:0], (4, 8)).shape == (0, 4, 8)


def test_targets_equal_area_downsampling_for_aligned_boxes():
    torch.manual_seed(0)
    masks = (torch.rand(1, 64, 64) > 0.5).float()
    t = mask_targets(masks, torch.tensor([0]), torch.tensor([[0.0, 0.0, 64.0, 32.0]]), (8, 16))
    ref = F.avg_pool2d(masks[:, None, :32, :], 4)[0, 0] >= 0.5
    assert torch.equal(t[0].bool(), ref)


def test_rasterize_polygons_and_bitmasks():
    poly = PolygonMasks([[[2.0, 2.0, 10.0, 2.0, 10.0, 6.0, 2.0, 6.0]]])
    m = rasterize_masks(poly, (16, 16))
    assert m.shape == (1, 16, 16) and m.dtype == torch.float32
    assert m[0, 3:5, 3:9].eq(1).all() and m[0, 10:].eq(0).all()
    bits = BitMasks(torch.zeros(2, 8, 8, dtype=torch.bool))
    assert rasterize_masks(bits, (8, 8)).shape == (2, 8, 8)
    assert rasterize_masks(PolygonMasks([]), (8, 8)).shape == (0, 8, 8)


def test_loss_is_mean_bce_per_box_then_over_boxes():
    a, ta = torch.randn(3, 4, 4), (torch.rand(3, 4, 4) > 0.5).float()
    b, tb = torch.randn(1, 8, 2), (torch.rand(1, 8, 2) > 0.5).float()
    loss = isb_mask_loss([a, b, torch.zeros(0, 2, 2)], [ta, tb, torch.zeros(0, 2, 2)])
    per_box = torch.cat([
        F.binary_cross_entropy_with_logits(a, ta, reduction="none").mean((1, 2)),
        F.binary_cross_entropy_with_logits(b, tb, reduction="none").mean((1, 2)),
    ])
    torch.testing.assert_close(loss, per_box.mean())
    assert isb_mask_loss([torch.zeros(0, 2, 2)], [torch.zeros(0, 2, 2)]) == 0


def test_pad_mask_logits():
    a, b = torch.randn(2, 4, 4), torch.randn(1, 8, 2)
    padded, sizes = pad_mask_logits([a, b], [torch.tensor([3, 0]), torch.tensor([1])], 4)
    assert padded.shape == (4, 8, 4)
    assert sizes.tolist() == [[4, 4], [8, 2], [0, 0], [4, 4]]
    assert torch.equal(padded[3, :4, :4], a[0]) and torch.equal(padded[1, :, :2], b[0])


def test_paste_equals_interpolation_into_the_box():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 6)
    boxes = torch.tensor([[8.0, 16.0, 56.0, 48.0], [0.0, 0.0, 24.0, 12.0]])  # pixel-aligned
    sizes = torch.tensor([[4, 6], [4, 6]])
    got = paste_mask_logits(logits, sizes, boxes, (64, 80), threshold=0.3)
    for k, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        ref = torch.zeros(64, 80, dtype=torch.bool)
        up = F.interpolate(logits[k][None, None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
        ref[y0:y1, x0:x1] = up[0, 0] > 0.3
        assert torch.equal(got[k], ref)


def test_paste_uses_only_the_valid_region_and_empty_sizes():
    logits = torch.full((2, 8, 8), -5.0)
    logits[0, :2, :2] = 5.0  # valid 2x2 region, all foreground
    sizes = torch.tensor([[2, 2], [0, 0]])
    boxes = torch.tensor([[10.0, 10.0, 20.0, 30.0], [0.0, 0.0, 40.0, 40.0]])
    got = paste_mask_logits(logits, sizes, boxes, (40, 40), pixels_per_chunk=1)
    assert got[0].sum() == 10 * 20 and got[0, 10:30, 10:20].all()
    assert not got[1].any()
    assert paste_mask_logits(logits[:0], sizes[:0], boxes[:0], (5, 5)).shape == (0, 5, 5)


def test_threshold_is_on_logits():
    logits = torch.tensor([[[-0.1, 0.1]]])
    m = paste_mask_logits(logits, torch.tensor([[1, 2]]), torch.tensor([[0.0, 0.0, 2.0, 1.0]]), (1, 2))
    assert m.tolist() == [[[False, True]]]


def _reference_paste(logits, sizes, boxes, image_size, threshold):
    """Every output pixel through the same bilinear convention, one box at a time."""
    height, width = image_size
    out = torch.zeros((len(logits), height, width), dtype=torch.bool)
    for k, ((h, w), (x0, y0, x1, y1)) in enumerate(zip(sizes.tolist(), boxes.tolist())):
        if h == 0 or w == 0:
            continue
        ys = torch.arange(height) + 0.5
        xs = torch.arange(width) + 0.5
        u = ((ys - y0) / (y1 - y0) * h - 0.5).clamp(0, h - 1)
        v = ((xs - x0) / (x1 - x0) * w - 0.5).clamp(0, w - 1)
        grid = torch.stack(torch.meshgrid(v, u, indexing="xy"), -1)  # (H, W, 2) as (x, y)
        norm = torch.stack([(2 * grid[..., 0] + 1) / w - 1, (2 * grid[..., 1] + 1) / h - 1], -1)
        value = F.grid_sample(logits[k, :h, :w][None, None].double(), norm[None].double(),
                              mode="bilinear", align_corners=False)[0, 0]
        inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
        out[k] = (value > threshold) & inside
    return out


@pytest.mark.parametrize("threshold", [0.0, -0.5])
@pytest.mark.parametrize("pixels_per_chunk", [1, 900, 1 << 20])
def test_paste_matches_a_per_box_reference(threshold, pixels_per_chunk):
    """Random fractional boxes, some over the image edges, some without a mask: the chunked
    block paste equals a full-image per-box reference."""
    torch.manual_seed(0)
    num, height, width = 9, 37, 53
    sizes = torch.randint(1, 9, (num, 2))
    sizes[4] = 0
    logits = torch.randn(num, 8, 8) * 2
    xy = torch.rand(num, 2) * torch.tensor([width, height]) - 5
    wh = torch.rand(num, 2) * torch.tensor([width, height]) * 0.8 + 0.3
    boxes = torch.cat([xy, xy + wh], 1)
    got = paste_mask_logits(logits, sizes, boxes, (height, width), threshold, pixels_per_chunk)
    assert torch.equal(got, _reference_paste(logits, sizes, boxes, (height, width), threshold))
