"""SSD matching of default boxes to ground truth (Kolhatkar (2020) §3.1.1):

1. each ground-truth box is matched to the default box with the best IoU (whatever that IoU);
2. every default box whose best IoU with a ground-truth box is above the threshold (> 0.5) is
   matched to that box.

Step 1 wins over step 2. When several ground-truth boxes share the same best default box,
the one with the higher IoU keeps it (ties: the lower index, as the TF OD API's
``force_match_for_each_row``).
"""

import torch
from torchvision.ops import box_iou

__all__ = ["match_default_boxes"]


def match_default_boxes(
    gt_boxes: torch.Tensor, default_boxes: torch.Tensor, iou_threshold: float = 0.5
):
    """
    Args:
        gt_boxes: (G, 4) XYXY.
        default_boxes: (A, 4) XYXY.
    Returns:
        LongTensor (A,): index of the matched ground-truth box, -1 for background.
    """
    num_boxes = default_boxes.shape[0]
    if gt_boxes.numel() == 0:
        return torch.full((num_boxes,), -1, dtype=torch.long, device=default_boxes.device)
    iou = box_iou(gt_boxes, default_boxes)  # (G, A)
    best_iou, best_gt = iou.max(0)
    matches = torch.where(best_iou > iou_threshold, best_gt, torch.full_like(best_gt, -1))

    best_box = iou.argmax(1)  # (G,) forced default box of each ground truth
    # Among the ground truths forcing the same default box, keep the one with the best IoU.
    same_box = best_box[:, None] == best_box[None, :]  # (G, G)
    forced_iou = iou[:, best_box]  # (G, G): IoU of gt i with the box forced by gt j
    winner = (forced_iou + 2.0 * same_box).argmax(0)  # (G,)
    matches[best_box] = winner
    return matches
