import numpy as np
import pytest
import torch

from panext_d2.config import get_panext_cfg
from panext_d2.config.isb import ISB_SHAPES
from panext_d2.data.builders.cells import match_shapes
from panext_d2.modeling.isb import ISB_VARIANTS, build_isb_routing, build_routing_from_cfg

MS = [(15, 10), (9, 4), (7, 3), (6, 3), (5, 2), (4, 2), (3, 2), (2, 2), (2, 1), (1, 1)]
NEW = [(15, 15), (10, 10), (8, 8), (6, 6), (4, 4), (2, 2), (1, 1)]
SMALL = [(10, 10), (8, 6), (6, 4), (5, 3), (4, 2), (2, 2), (2, 1), (1, 1)]


def _routing(variant, **kw):
    kw.setdefault("single_shapes", ISB_SHAPES)
    kw.setdefault("multi_shape_thresholds", MS)
    return build_isb_routing(variant, **kw)


def _all_shapes(n=20):
    h, w = torch.meshgrid(torch.arange(1, n + 1), torch.arange(1, n + 1), indexing="ij")
    return torch.stack([h.flatten(), w.flatten()], 1)


def test_config_defaults_build_every_variant():
    cfg = get_panext_cfg()
    counts = {}
    for variant in ISB_VARIANTS:
        cfg.MODEL.ISB.VARIANT = variant
        routing = build_routing_from_cfg(cfg)
        counts[variant] = len(routing)
        assert routing.is_multi_branch == (variant != "single_branch")
    assert counts == {"single_branch": 1, "single_shape": 12, "single_shape_plus": 13, "multi_shape": 10}
    assert [tuple(s) for s in cfg.MODEL.ISB.SINGLE_SHAPES] == list(ISB_SHAPES)
    assert [tuple(s) for s in cfg.MODEL.ISB.MULTI_SHAPE_THRESHOLDS] == MS


def test_single_branch_takes_every_box_pooled():
    r = _routing("single_branch")
    assert r.branches[0].shape == (10, 10) and r.branches[0].pool and r.branches[0].max_boxes == 100
    assert (r.assign(_all_shapes()) == 0).all()


def test_single_shape_matches_table_5_1_exactly():
    r = _routing("single_shape")
    shapes = _all_shapes()
    got = r.assign(shapes)
    table = match_shapes(shapes.numpy())  # numpy builder: (N, 12)
    expected = np.where(table.any(1), table.argmax(1), -1)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert (got >= 0).sum() == 12
    assert not any(b.resize for b in r.branches)


def test_single_shape_plus_sends_the_rest_to_14x14():
    r = _routing("single_shape_plus")
    assert r.branches[-1].shape == (14, 14) and r.branches[-1].resize
    got = r.assign(torch.tensor([[7, 2], [2, 1], [2, 7], [20, 20], [1, 1]]))
    assert got.tolist() == [0, 11, 12, 12, 12]


@pytest.mark.parametrize("table", [MS, NEW, SMALL])
def test_multi_shape_resizes_down_to_the_largest_threshold_that_fits(table):
    r = _routing("multi_shape", multi_shape_thresholds=table)
    shapes = _all_shapes()
    got = r.assign(shapes)
    assert (got >= 0).all()  # every table ends with 1x1
    t = torch.tensor(table)
    chosen = t[got]
    assert (chosen <= shapes).all()  # resized down: the threshold fits inside the box
    for k in range(len(table)):  # no earlier (larger) threshold fits
        earlier = got > k
        assert not (t[k] <= shapes[earlier]).all(1).any()


def test_multi_shape_examples():
    r = _routing("multi_shape")
    shapes = torch.tensor([[20, 20], [15, 10], [14, 10], [9, 9], [20, 3], [2, 7], [1, 20], [6, 3], [5, 5]])
    assert [MS[i] for i in r.assign(shapes).tolist()] == [
        (15, 10), (15, 10), (9, 4), (9, 4), (7, 3), (2, 2), (1, 1), (6, 3), (5, 2)
    ]
    small = _routing("multi_shape", multi_shape_thresholds=SMALL)
    assert small.assign(torch.tensor([[20, 18]])).tolist() == [0]  # > 10x10 -> the 10x10


def test_threshold_table_without_1x1_leaves_small_boxes_unassigned():
    r = _routing("multi_shape", multi_shape_thresholds=[(4, 4), (2, 2)])
    assert r.assign(torch.tensor([[1, 5], [3, 3], [9, 9]])).tolist() == [-1, 1, 0]


def test_caps_per_branch_and_image_keep_the_first_boxes():
    r = _routing("multi_shape", max_boxes_per_branch=2)
    shapes = torch.tensor([[1, 1]] * 3 + [[2, 2]] * 2 + [[1, 1]] * 3)
    image = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    got = r.route(shapes, image)
    assert got.tolist() == [9, 9, -1, 7, 7, 9, 9, -1]
    sb = _routing("single_branch", max_boxes_single_branch=3)
    assert sb.route(torch.ones(5, 2, dtype=torch.long), torch.zeros(5, dtype=torch.long)).tolist() == [0, 0, 0, -1, -1]


def test_route_random_caps_invariant():
    rng = np.random.default_rng(0)
    shapes = torch.from_numpy(rng.integers(1, 6, size=(500, 2)))
    image = torch.from_numpy(rng.integers(0, 4, size=500))
    r = _routing("multi_shape", max_boxes_per_branch=7)
    assigned, routed = r.assign(shapes), r.route(shapes, image)
    assert ((routed == assigned) | (routed == -1)).all()
    for i in range(4):
        for b in range(len(r)):
            a = ((image == i) & (assigned == b)).nonzero()[:, 0]
            kept = ((image == i) & (routed == b)).nonzero()[:, 0]
            assert kept.tolist() == a[:7].tolist()


def test_empty_and_unknown():
    r = _routing("multi_shape")
    assert r.route(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long)).numel() == 0
    with pytest.raises(ValueError):
        _routing("mask_rcnn")
