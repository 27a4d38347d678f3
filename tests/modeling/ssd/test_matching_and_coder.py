import math

import torch

from panext_d2.modeling.ssd import SSDBoxCoder, match_default_boxes


def test_best_default_box_forced_below_threshold():
    defaults = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 100, 100]])
    gt = torch.tensor([[0.0, 0, 4, 10]])  # IoU 0.4 with box 0, 0.04 with box 2
    matches = match_default_boxes(gt, defaults, 0.5)
    assert matches.tolist() == [0, -1, -1]


def test_threshold_is_strictly_above():
    defaults = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 10, 16], [50, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0, 10, 12]])  # IoU 10/12, 0.6, 0.75, 0
    assert match_default_boxes(gt, defaults, 0.5).tolist() == [0, 0, 0, -1]
    gt = torch.tensor([[0.0, 0, 10, 5]])  # IoU 0.5 exactly with box 0 (forced), 0.25, 5/16
    assert match_default_boxes(gt, defaults, 0.5).tolist() == [0, -1, -1, -1]
    assert match_default_boxes(gt, defaults[1:], 0.5).tolist() == [-1, 0, -1]
    # IoU exactly 0.5 with a box that is not the best one: not matched
    gt = torch.tensor([[0.0, 0, 10, 10]])
    assert match_default_boxes(gt, defaults[:2], 0.5).tolist() == [0, -1]


def test_shared_best_box_goes_to_higher_iou():
    defaults = torch.tensor([[0.0, 0, 10, 10], [0, 0, 11, 10], [40, 40, 50, 50]])
    gt = torch.tensor([[0.0, 0, 10, 9], [0, 0, 10, 10]])  # both prefer box 0
    matches = match_default_boxes(gt, defaults, 0.5)
    # box 0 forced to gt 1 (IoU 1 > 0.9); box 1 has IoU 10/11 with gt 1 > 0.818 with gt 0
    assert matches.tolist() == [1, 1, -1]


def test_no_ground_truth():
    assert match_default_boxes(torch.zeros(0, 4), torch.rand(5, 4), 0.5).tolist() == [-1] * 5


def test_encoding_by_hand():
    coder = SSDBoxCoder((10, 10, 5, 5))
    anchor = torch.tensor([[0.0, 0, 10, 20]])  # centre (5, 10), 10 x 20
    gt = torch.tensor([[2.0, 4, 14, 24]])  # centre (8, 14), 12 x 20
    expected = torch.tensor([[10 * 3 / 10, 10 * 4 / 20, 5 * math.log(1.2), 0.0]])
    torch.testing.assert_close(coder.encode(gt, anchor), expected)


def test_round_trip():
    torch.manual_seed(0)
    xy = torch.rand(50, 2) * 100
    anchors = torch.cat([xy, xy + 1 + torch.rand(50, 2) * 50], 1)
    xy = torch.rand(50, 2) * 100
    boxes = torch.cat([xy, xy + 1 + torch.rand(50, 2) * 50], 1)
    coder = SSDBoxCoder()
    torch.testing.assert_close(
        coder.decode(coder.encode(boxes, anchors), anchors), boxes, atol=1e-4, rtol=1e-5
    )
    deltas = torch.randn(50, 4)
    torch.testing.assert_close(
        coder.encode(coder.decode(deltas, anchors), anchors), deltas, atol=1e-4, rtol=1e-4
    )
