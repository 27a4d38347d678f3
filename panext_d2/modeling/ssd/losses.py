"""SSD losses (Kolhatkar (2020) §3.1.1, §3.2.1; TF OD API ``ssd_mobilenet_v1_coco``):

* localisation: smooth-L1 (Huber, ``beta`` 1) on the encoded offsets of matched default
  boxes, summed over the four offsets;
* classification: softmax cross-entropy (index 0 = background) over the matched default
  boxes and the hard negatives: per image, the unmatched boxes with the largest
  classification loss, at most ``neg_pos_ratio`` per positive and at least
  ``min_negatives`` (so that an image without objects still trains the background class);
* both summed over the batch and divided by the number of matched boxes in the batch (at
  least 1).

The TF OD API's miner also suppresses near-duplicate negatives (NMS at IoU 0.99) and caps
an image at 3000 examples; neither is reproduced here.
"""

from typing import Dict

import torch
import torch.nn.functional as F

__all__ = ["hard_negative_mask", "ssd_losses"]


def hard_negative_mask(
    neg_losses: torch.Tensor, positive: torch.Tensor, neg_pos_ratio: float, min_negatives: int
) -> torch.Tensor:
    """
    Args:
        neg_losses: (N, A) classification loss of each default box (only negatives count).
        positive: (N, A) bool, matched default boxes.
    Returns:
        (N, A) bool: the selected hard negatives, per image the
        ``clamp(neg_pos_ratio * num_pos, min=min_negatives)`` unmatched boxes of highest loss.
    """
    num_neg = (positive.sum(1).float() * neg_pos_ratio).long().clamp(min=min_negatives)
    losses = neg_losses.detach().masked_fill(positive, float("-inf"))
    order = losses.argsort(1, descending=True)
    rank = order.argsort(1)
    return (rank < num_neg[:, None]) & ~positive


def ssd_losses(
    pred_logits: torch.Tensor,
    pred_deltas: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_deltas: torch.Tensor,
    *,
    neg_pos_ratio: float = 3.0,
    min_negatives: int = 3,
    smooth_l1_beta: float = 1.0,
    loc_weight: float = 1.0,
    cls_weight: float = 1.0,
) -> Dict[str, torch.Tensor]:
    """
    Args:
        pred_logits: (N, A, K + 1) class logits, index 0 = background.
        pred_deltas: (N, A, 4) predicted offsets.
        gt_labels: (N, A) long, 0 = background, k + 1 = foreground class k.
        gt_deltas: (N, A, 4) encoded matched ground truth (ignored where gt_labels == 0).
    Returns:
        {"loss_cls", "loss_box_reg"}.
    """
    positive = gt_labels > 0
    normalizer = positive.sum().clamp(min=1).to(pred_logits.dtype)
    ce = F.cross_entropy(pred_logits.flatten(0, 1), gt_labels.flatten(), reduction="none")
    ce = ce.view_as(gt_labels)
    negative = hard_negative_mask(ce, positive, neg_pos_ratio, min_negatives)
    loss_cls = ce[positive | negative].sum() / normalizer
    loss_box_reg = (
        F.smooth_l1_loss(
            pred_deltas[positive], gt_deltas[positive], beta=smooth_l1_beta, reduction="sum"
        )
        / normalizer
    )
    return {"loss_cls": cls_weight * loss_cls, "loss_box_reg": loc_weight * loss_box_reg}
