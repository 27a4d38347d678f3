import math

import pytest
import torch

from panext_d2.modeling.encdec.losses import focal_loss, foreground_dice_loss, pixel_cross_entropy

# 1 image, 3 classes, 1 x 3 pixels; the last pixel is ignored.
LOGITS = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]], [[0.0, 0.0, 5.0]]]])
TARGET = torch.tensor([[[0, 2, 255]]])


def _softmax_col(logits, j):
    e = [math.exp(v) for v in logits[0, :, 0, j].tolist()]
    return [v / sum(e) for v in e]


def test_cross_entropy_by_hand():
    p0, p1 = _softmax_col(LOGITS, 0), _softmax_col(LOGITS, 1)
    expected = -(math.log(p0[0]) + math.log(p1[2])) / 2
    assert pixel_cross_entropy(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_focal_by_hand():
    p0, p1 = _softmax_col(LOGITS, 0)[0], _softmax_col(LOGITS, 1)[2]
    expected = -((1 - p0) ** 2 * math.log(p0) + (1 - p1) ** 2 * math.log(p1)) / 2
    assert focal_loss(LOGITS, TARGET, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert focal_loss(LOGITS, TARGET, gamma=0.0).item() == pytest.approx(
        pixel_cross_entropy(LOGITS, TARGET).item(), rel=1e-6
    )


def test_all_ignored_is_zero_not_nan():
    target = torch.full((1, 1, 3), 255)
    assert pixel_cross_entropy(LOGITS, target).item() == 0.0
    assert focal_loss(LOGITS, target).item() == 0.0


def test_foreground_dice_by_hand():
    # image 0: foreground (class 2 at pixel 1, pixel 2 ignored); image 1: empty.
    logits = torch.cat([LOGITS, torch.randn(1, 3, 1, 3)])
    target = torch.cat([TARGET, torch.zeros(1, 1, 3, dtype=torch.long)])
    p0, p1 = _softmax_col(LOGITS, 0), _softmax_col(LOGITS, 1)
    # class 1: absent from target -> Dice 0; class 2: 2 * p1[2] / (1 + p0[2] + p1[2])
    dice2 = 2 * p1[2] / (1 + p0[2] + p1[2])
    expected = 1 - (0 + dice2) / 2
    value = foreground_dice_loss(logits, target)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # the empty image does not change the value
    assert foreground_dice_loss(logits[:1], target[:1]).item() == pytest.approx(expected, rel=1e-6)
    # perfect prediction -> 1 - (1 + 1)/2 = 0 for a two-foreground-class image
    perfect_t = torch.tensor([[[1, 2]]])
    perfect = torch.nn.functional.one_hot(perfect_t, 3).permute(0, 3, 1, 2).float() * 50
    assert foreground_dice_loss(perfect, perfect_t).item() == pytest.approx(0.0, abs=1e-6)


def test_foreground_dice_on_only_empty_images():
    logits = torch.randn(3, 3, 4, 5, requires_grad=True)
    target = torch.zeros(3, 4, 5, dtype=torch.long)
    target[1, 0, 0] = 255
    value = foreground_dice_loss(logits, target)
    assert torch.isfinite(value) and value.item() == 0.0
    value.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_foreground_dice_gradient_pushes_toward_target():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    target = torch.tensor([[[1, 0], [0, 0]]])
    foreground_dice_loss(logits, target).backward()
    assert logits.grad[0, 1, 0, 0] < 0  # raising the fg logit of the fg pixel lowers the loss
    assert logits.grad[0, 1, 1, 1] > 0
