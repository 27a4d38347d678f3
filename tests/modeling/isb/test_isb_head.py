import pytest
import torch
from torch.nn import functional as F

from panext_d2.config.isb import ISB_SHAPES
from panext_d2.modeling.isb import ISBHead, build_isb_routing

MS = [(15, 10), (9, 4), (7, 3), (6, 3), (5, 2), (4, 2), (3, 2), (2, 2), (2, 1), (1, 1)]


def _head(variant, **kw):
    routing = build_isb_routing(variant, single_shapes=ISB_SHAPES, multi_shape_thresholds=MS)
    torch.manual_seed(0)
    head = ISBHead(
        routing=routing, in_channels=[6, 5, 4], in_strides=[32, 16, 8], num_classes=3,
        conv_dim=8, deconv_dim=4, **kw,
    )
    for p in head.parameters():  # non-trivial scoring weights
        torch.nn.init.normal_(p, std=0.2)
    return head


def _features(batch=2, grid=10):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, c, grid * s, grid * s, generator=g) for c, s in ((6, 1), (5, 2), (4, 4))]


def _manual(head, feats, b, box, cls, branch):
    """The branch applied to crops cut and resized one box at a time."""
    spec = head.routing.branches[branch]
    cells = head.encompassing(box[None], feats[0].shape[-2:])[0].tolist()
    x0, y0, x1, y1 = cells
    crops = []
    for f, s in zip(feats, (1, 2, 4)):
        crop = f[b, None, :, y0 * s : y1 * s, x0 * s : x1 * s]
        if spec.resize:
            pool = spec.pool and (s == 1 or head.pool_skip_crops)
            factor = 2 if pool else 1
            size = (spec.shape[0] * s * factor, spec.shape[1] * s * factor)
            crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
            if pool:
                crop = F.max_pool2d(crop, 2)
        crops.append(crop)
    return head.branches[branch](crops)[0, cls]


@pytest.mark.parametrize("pool_skip_crops", [False, True])
def test_logits_equal_per_box_computation_for_every_variant(pool_skip_crops):
    feats = _features()
    boxes = torch.tensor(
        [[5.0, 5.0, 60.0, 120.0], [33.0, 40.0, 90.0, 100.0], [0.0, 0.0, 320.0, 320.0], [200.0, 250.0, 230.0, 262.0]]
    )
    image = torch.tensor([0, 1, 1, 0])
    classes = torch.tensor([2, 0, 1, 1])
    for variant in ("single_branch", "single_shape", "single_shape_plus", "multi_shape"):
        head = _head(variant, pool_skip_crops=pool_skip_crops)
        pred = head(feats, boxes, image, classes)
        assert pred.cells.shape == (4, 4) and pred.branch.shape == (4,)
        seen = 0
        for b, (idx, logits) in enumerate(zip(pred.index, pred.logits)):
            assert logits.shape[1:] == head.output_size(head.routing.branches[b])
            for row, k in enumerate(idx.tolist()):
                ref = _manual(head, feats, image[k], boxes[k], classes[k], b)
                torch.testing.assert_close(logits[row], ref, rtol=1e-4, atol=1e-5)
                seen += 1
        assert seen == int((pred.branch >= 0).sum())
    # 4x2 cells box (0) has a Single-Shape branch; the 10x10 one (2) does not.
    pred = _head("single_shape")(feats, boxes, image, classes)
    assert pred.branch[0] == ISB_SHAPES.index((4, 2)) and pred.branch[2] == -1


def test_gradient_stops_at_the_crops():
    feats = [f.requires_grad_() for f in _features()]
    boxes = torch.tensor([[5.0, 5.0, 60.0, 120.0]])
    for stop in (True, False):
        for f in feats:
            f.grad = None
        head = _head("multi_shape", stop_gradient=stop)
        pred = head(feats, boxes, torch.tensor([0]), torch.tensor([0]))
        sum(x.sum() for x in pred.logits).backward()
        assert all((f.grad is None) == stop for f in feats)
        assert all(p.grad is not None for p in head.branches[int(pred.branch[0])].parameters())


def test_padding_to_the_cap_changes_nothing():
    feats = _features()
    boxes = torch.tensor([[5.0, 5.0, 60.0, 120.0], [33.0, 40.0, 90.0, 100.0]])
    args = (feats, boxes, torch.tensor([0, 1]), torch.tensor([0, 2]))
    a = _head("multi_shape")(*args)
    b = _head("multi_shape", pad_to_max_boxes=True)(*args)
    for x, y in zip(a.logits, b.logits):
        torch.testing.assert_close(x, y)


def test_fcn16_uses_two_maps():
    routing = build_isb_routing("single_branch")
    head = ISBHead(routing=routing, in_channels=[6, 5, 4], in_strides=[32, 16, 8], num_classes=1,
                   num_skips=1, conv_dim=8, deconv_dim=4)
    feats = _features()[:2]
    box, image, cls = torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor([0]), torch.tensor([0])
    pred = head(feats, box, image, cls)
    assert pred.logits[0].shape == (1, 20, 20)
    # The stride-16 skip map is read: changing it inside the box changes the mask ...
    changed = feats[1].clone()
    changed[:, :, :4, :4] += 1.0
    assert not torch.allclose(head([feats[0], changed], box, image, cls).logits[0], pred.logits[0])
    # ... and outside the box's crop it does not.
    far = feats[1].clone()
    far[:, :, -4:, -4:] += 1.0
    torch.testing.assert_close(head([feats[0], far], box, image, cls).logits[0], pred.logits[0])


def test_skip_maps_are_projected_before_cropping_when_cheaper():
    """Single-Branch with many boxes: its skip crops come from the projected maps, and the
    logits equal the per-box computation (checked above); with one box they do not."""
    feats = _features()
    head = _head("single_branch")
    spec, module = head.routing.branches[0], head.branches[0]
    maps, projected = head._branch_maps(spec, module, feats, 8)
    assert projected == [True, True] and [m.shape[1] for m in maps[1:]] == [4, 4]  # deconv_dim
    _, projected = head._branch_maps(spec, module, feats, 1)
    assert projected == [False, False]


@pytest.mark.parametrize("variant", ["single_branch", "multi_shape"])
def test_results_do_not_depend_on_the_chunk_size(variant):
    feats = _features()
    torch.manual_seed(3)
    xy = torch.rand(37, 2) * 250
    boxes = torch.cat([xy, xy + torch.rand(37, 2) * 150 + 8], 1)
    args = (feats, boxes, torch.randint(0, feats[0].shape[0], (37,)), torch.zeros(37, dtype=torch.long))
    whole = _head(variant, boxes_per_chunk=100)(*args)
    for chunk in (1, 5):
        head = _head(variant, boxes_per_chunk=chunk)
        part = head(*args)
        for a, b in zip(whole.logits, part.logits):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
