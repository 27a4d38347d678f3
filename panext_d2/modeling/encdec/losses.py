"""Losses of Andrade (2021) §6.2: pixel cross-entropy or focal loss on every image, plus the
auxiliary foreground soft-Dice of eq. 6.3 on the images that contain foreground (eq. 6.4:
L = L_main + alpha * L_fg). Label 0 is the background class B.

All three take logits (N, K, H, W) and integer targets (N, H, W) in which ``ignore_value``
marks pixels that count nowhere, and are computed in float32.
"""

import torch
import torch.nn.functional as F


def _valid_mean(per_pixel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels; 0 (with a gradient path) when no pixel is valid."""
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


def pixel_cross_entropy(logits, targets, ignore_value: int = 255):
    """Eq. 5.6 averaged over the labelled pixels of the batch. (Eq. 5.6's extra 1/|C| is a
    constant factor and is left out, as in every framework's cross-entropy.)"""
    valid = targets != ignore_value
    per_pixel = F.cross_entropy(logits.float(), torch.where(valid, targets, 0), reduction="none")
    return _valid_mean(per_pixel, valid)


def focal_loss(logits, targets, gamma: float = 2.0, ignore_value: int = 255):
    """Softmax focal loss -(1 - p_t)^gamma log p_t (eq. 5.8: no class weights), averaged
    over the labelled pixels; gamma = 0 is the cross-entropy."""
    valid = targets != ignore_value
    log_p = F.log_softmax(logits.float(), dim=1)
    log_pt = log_p.gather(1, torch.where(valid, targets, 0).unsqueeze(1)).squeeze(1)
    per_pixel = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    return _valid_mean(per_pixel, valid)


def foreground_dice_loss(logits, targets, ignore_value: int = 255, eps: float = 1e-6):
    """Eq. 6.3 averaged over the foreground images of the batch.

    For each image with at least one labelled foreground pixel (label 1..K-1):
    ``1 - 2/(K-1) * sum_{c>0} sum(y_c * p_c) / (sum(y_c) + sum(p_c))`` with p the softmax
    probabilities and y the one-hot target, sums over the image's labelled pixels. A
    foreground class absent from the image's target contributes a constant Dice of 0, as
    the equation is written. Images without foreground are left out (§6.2.2); a batch with
    none gives exactly 0, still connected to ``logits`` so that every rank back-propagates
    through the same graph.
    """
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError("the foreground Dice needs a background and at least one foreground class")
    valid = (targets != ignore_value).unsqueeze(1)
    probs = F.softmax(logits.float(), dim=1) * valid
    onehot = F.one_hot(torch.where(valid.squeeze(1), targets, 0), num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    intersection = (probs * onehot)[:, 1:].sum(dim=(2, 3))
    denominator = onehot[:, 1:].sum(dim=(2, 3)) + probs[:, 1:].sum(dim=(2, 3))
    dice = 2.0 * intersection / denominator.clamp(min=eps)  # (N, K-1)
    is_foreground = (onehot[:, 1:].sum(dim=(1, 2, 3)) > 0).to(dice.dtype)
    per_image = 1.0 - dice.mean(dim=1)
    return (per_image * is_foreground).sum() / is_foreground.sum().clamp(min=1)
