"""PaNeXt losses (Debucean (2022) §3.3.3): focal position losses (eq. 3.3.1-3.3.3) and the
weighted Dice segmentation loss (eq. 3.3.4-3.3.5) with the Dice of eq. 2.6.12. All are
computed in float32: under float16 autocast a sum over a mask's pixels passes 65,504."""

from typing import List

import torch
from torchvision.ops import sigmoid_focal_loss

THING_NORMS = ("num_thing_classes", "num_instances")


def thing_position_loss(
    logits: List[torch.Tensor],
    heatmaps: List[torch.Tensor],
    *,
    num_instances: int,
    num_thing_classes: int,
    norm: str,
    alpha: float,
    gamma: float,
) -> torch.Tensor:
    """Eq. 3.3.1: sum over levels of the summed focal loss, divided by N_th.

    N_th is the number of thing classes per image (thesis; the loss is then averaged over
    the batch), or the number of thing instances in the batch (PanopticFCN, at least 1).
    """
    if norm not in THING_NORMS:
        raise ValueError(f"MODEL.PANEXT.LOSS.THING_NORM must be one of {THING_NORMS}, got {norm!r}")
    total = sum(
        sigmoid_focal_loss(x.float(), y.float(), alpha, gamma, reduction="sum")
        for x, y in zip(logits, heatmaps)
    )
    if norm == "num_thing_classes":
        return total / (num_thing_classes * logits[0].shape[0])
    return total / max(num_instances, 1)


def stuff_position_loss(
    logits: List[torch.Tensor], maps: List[torch.Tensor], *, alpha: float, gamma: float
) -> torch.Tensor:
    """Eq. 3.3.2: sum over levels of the summed focal loss divided by W_k * H_k, averaged
    over the images of the batch."""
    total = sum(
        sigmoid_focal_loss(x.float(), y.float(), alpha, gamma, reduction="sum")
        / (x.shape[-1] * x.shape[-2])
        for x, y in zip(logits, maps)
    )
    return total / logits[0].shape[0]


DICE_FORMS = ("thesis", "panopticfcn")


def dice_loss(pred: torch.Tensor, target: torch.Tensor, form: str = "thesis") -> torch.Tensor:
    """Dice loss over the last axis.

    "thesis" (eq. 2.6.12): 1 - (1 + 2 sum(y*p)) / (1 + sum(y) + sum(p));
    "panopticfcn" (V-Net form of PanopticFCN's code): 1 - 2 sum(y*p) / (sum(y^2) + sum(p^2)).
    """
    pred, target = pred.float(), target.float()
    if form == "thesis":
        return 1 - (1 + 2 * (pred * target).sum(-1)) / (1 + target.sum(-1) + pred.sum(-1))
    if form == "panopticfcn":
        union = (pred * pred).sum(-1) + (target * target).sum(-1)
        return 1 - 2 * (pred * target).sum(-1) / union.clamp(min=1e-8)
    raise ValueError(f"MODEL.PANEXT.LOSS.DICE_FORM must be one of {DICE_FORMS}, got {form!r}")


def weighted_dice_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, form: str = "thesis"
) -> torch.Tensor:
    """Eq. 3.3.4 per object: sum_k w_k Dice(P_{i,k}, Y_i).

    Args:
        pred: (M, k, P) mask probabilities of the k positions; target: (M, P); weights (M, k).
    Returns:
        (M,) losses.
    """
    return (weights * dice_loss(pred, target[:, None], form)).sum(1)


def segmentation_loss(
    thing_pred, thing_target, thing_weights, stuff_pred, stuff_target, form: str = "thesis"
) -> torch.Tensor:
    """Eq. 3.3.5: weighted Dice of the M things (k positions) and N stuff regions (k = 1,
    w = 1) summed and divided by M + N."""
    count = len(thing_target) + len(stuff_target)
    total = weighted_dice_loss(thing_pred, thing_target, thing_weights, form).sum()
    total = total + dice_loss(stuff_pred, stuff_target, form).sum()
    return total / max(count, 1)
