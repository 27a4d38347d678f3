"""PaNeXt losses against hand computations on tiny tensors (Debucean (2022) eq. 3.3.1-3.3.5, 2.6.12)."""

import math

import pytest
import torch

from panext_d2.modeling.panext.losses import (
    dice_loss,
    segmentation_loss,
    stuff_position_loss,
    thing_position_loss,
    weighted_dice_loss,
)


def focal_by_hand(logit, target, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-logit))
    ce = -(target * math.log(p) + (1 - target) * math.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * (1 - p_t) ** gamma * ce


def test_thing_position_loss_both_normalisations():
    # One image, two thing classes, two levels of 1x2 and 1x1 cells.
    logits = [torch.tensor([[[[0.5, -1.0]], [[2.0, 0.0]]]]), torch.tensor([[[[1.0]], [[-2.0]]]])]
    heat = [torch.tensor([[[[1.0, 0.3]], [[0.0, 0.0]]]]), torch.tensor([[[[0.0]], [[1.0]]]])]
    pairs = [(0.5, 1.0), (-1.0, 0.3), (2.0, 0.0), (0.0, 0.0), (1.0, 0.0), (-2.0, 1.0)]
    total = sum(focal_by_hand(x, y) for x, y in pairs)
    common = dict(alpha=0.25, gamma=2.0, num_thing_classes=2)
    thesis = thing_position_loss(logits, heat, num_instances=3, norm="num_thing_classes", **common)
    fcn = thing_position_loss(logits, heat, num_instances=3, norm="num_instances", **common)
    assert thesis.item() == pytest.approx(total / 2, rel=1e-5)  # N_th = 2 classes x 1 image
    assert fcn.item() == pytest.approx(total / 3, rel=1e-5)  # N_th = 3 instances
    with pytest.raises(ValueError):
        thing_position_loss(logits, heat, num_instances=3, norm="bogus", **common)


def test_thing_position_loss_thesis_mode_averages_over_images():
    logits = [torch.zeros(2, 4, 3, 3)]
    heat = [torch.zeros(2, 4, 3, 3)]
    one = thing_position_loss(
        [logits[0][:1]],
        [heat[0][:1]],
        num_instances=0,
        num_thing_classes=4,
        norm="num_thing_classes",
        alpha=0.25,
        gamma=2.0,
    )
    two = thing_position_loss(
        logits,
        heat,
        num_instances=0,
        num_thing_classes=4,
        norm="num_thing_classes",
        alpha=0.25,
        gamma=2.0,
    )
    assert two.item() == pytest.approx(one.item())


def test_stuff_position_loss_divides_each_level_by_its_area():
    logits = [torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]]), torch.tensor([[[[0.5]]]])]
    maps = [torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]]), torch.tensor([[[[1.0]]]])]
    level0 = sum(focal_by_hand(x, y) for x, y in [(0.0, 1), (1.0, 0), (-1.0, 0), (2.0, 1)]) / 4
    level1 = focal_by_hand(0.5, 1.0) / 1
    loss = stuff_position_loss(logits, maps, alpha=0.25, gamma=2.0)
    assert loss.item() == pytest.approx(level0 + level1, rel=1e-5)


def test_dice_is_eq_2_6_12():
    pred = torch.tensor([0.5, 1.0, 0.0, 0.25])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # 1 - (1 + 2 * 1.5) / (1 + 2 + 1.75)
    assert dice_loss(pred, target).item() == pytest.approx(1 - 4 / 4.75)
    assert dice_loss(target, target).item() == pytest.approx(1 - 5 / 5)


def test_dice_panopticfcn_form():
    pred = torch.tensor([0.5, 1.0, 0.0, 0.25])
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # 1 - 2 * 1.5 / (0.25 + 1 + 0.0625 + 2)
    assert dice_loss(pred, target, "panopticfcn").item() == pytest.approx(1 - 3 / 3.3125)
    with pytest.raises(ValueError):
        dice_loss(pred, target, "bogus")


def test_weighted_dice_and_segmentation_loss():
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    pred = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]])  # k = 2 positions
    weights = torch.tensor([[0.75, 0.25]])
    d0, d1 = 1 - 5 / 5, 1 - 3 / 5
    thing = 0.75 * d0 + 0.25 * d1
    assert weighted_dice_loss(pred, target, weights).tolist() == pytest.approx([thing])

    stuff_pred = torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    stuff_target = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    s0, s1 = 1 - (1 + 2 * 1.0) / (1 + 2 + 2.0), 1 - 3 / 3
    loss = segmentation_loss(pred, target, weights, stuff_pred, stuff_target)
    assert loss.item() == pytest.approx((thing + s0 + s1) / 3)  # M + N = 1 + 2
