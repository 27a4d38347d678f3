import torch
import torch.nn.functional as F

from panext_d2.modeling.ssd import hard_negative_mask, ssd_losses


def test_mining_picks_top_3n_negatives_by_loss():
    losses = torch.tensor([[9.0, 0.1, 5.0, 0.2, 4.0, 0.3, 3.0, 2.0, 0.4, 1.0]])
    positive = torch.zeros(1, 10, dtype=torch.bool)
    positive[0, 0] = True  # highest loss, but positive
    mask = hard_negative_mask(losses, positive, 3.0, 0)
    assert mask.nonzero()[:, 1].tolist() == [2, 4, 6]
    positive[0, 5] = True  # 2 positives -> 6 negatives
    assert hard_negative_mask(losses, positive, 3.0, 0).nonzero()[:, 1].tolist() == [
        2,
        4,
        6,
        7,
        8,
        9,
    ]


def test_min_negatives_and_cap():
    losses = torch.arange(6.0).view(1, 6)
    none = torch.zeros(1, 6, dtype=torch.bool)
    assert hard_negative_mask(losses, none, 3.0, 2).nonzero()[:, 1].tolist() == [4, 5]
    assert not hard_negative_mask(losses, none, 3.0, 0).any()
    everything_positive_but_one = torch.ones(1, 6, dtype=torch.bool)
    everything_positive_but_one[0, 3] = False
    assert hard_negative_mask(losses, everything_positive_but_one, 3.0, 0).nonzero()[
        :, 1
    ].tolist() == [3]


def test_loss_values_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 8, 3)
    deltas = torch.randn(2, 8, 4)
    gt_deltas = torch.randn(2, 8, 4)
    labels = torch.zeros(2, 8, dtype=torch.long)
    labels[0, 1] = 2
    out = ssd_losses(logits, deltas, labels, gt_deltas, neg_pos_ratio=3, min_negatives=1)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(2, 8)
    neg0 = ce[0].clone()
    neg0[1] = -1
    expected_cls = ce[0, 1] + neg0.topk(3).values.sum() + ce[1].max()
    torch.testing.assert_close(out["loss_cls"], expected_cls)
    expected_loc = F.smooth_l1_loss(deltas[0, 1], gt_deltas[0, 1], reduction="sum")
    torch.testing.assert_close(out["loss_box_reg"], expected_loc)


def test_image_without_objects_trains():
    logits = torch.randn(1, 20, 2, requires_grad=True)
    deltas = torch.randn(1, 20, 4, requires_grad=True)
    labels = torch.zeros(1, 20, dtype=torch.long)
    out = ssd_losses(logits, deltas, labels, torch.zeros(1, 20, 4), min_negatives=3)
    assert torch.isfinite(out["loss_cls"]) and out["loss_cls"] > 0
    assert out["loss_box_reg"] == 0
    sum(out.values()).backward()
    assert (logits.grad.abs().sum(-1) > 0).sum() == 3
    off = ssd_losses(logits, deltas, labels, torch.zeros(1, 20, 4), min_negatives=0)
    assert off["loss_cls"] == 0
