"""Pieces shared by the low-cost segmentation heads (Kolhatkar (2020) ch. 4): class scoring, bilinear
upsampling of the scores to the input size, size alignment and the per-pixel softmax
cross-entropy of FCN (§2.5.1 "Loss Function", §4.2.2 "Loss")."""

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec

__all__ = [
    "LOSS_REDUCTIONS",
    "SKIP_ALIGNS",
    "ScoringHead",
    "align_to",
    "pixel_softmax_cross_entropy",
    "score_conv",
    "select_features",
    "upsample_scores",
]

LOSS_REDUCTIONS = ("sum", "mean")
SKIP_ALIGNS = ("crop", "interpolate")


def select_features(
    input_shape: Dict[str, ShapeSpec], names: Sequence[str]
) -> Dict[str, ShapeSpec]:
    """The backbone outputs a head reads (``MODEL.SEM_SEG_HEAD.IN_FEATURES``)."""
    missing = [n for n in names if n not in input_shape]
    if missing:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.IN_FEATURES {list(names)}: {missing} not among the backbone's "
            f"outputs {list(input_shape)} (set the backbone's OUT_FEATURES)"
        )
    return {n: input_shape[n] for n in names}


def score_conv(in_channels: int, num_classes: int, init_std: float) -> Conv2d:
    """1x1 class-scoring conv with bias. ``init_std`` 0 zero-initialises it (Long et al.'s
    FCN: "zero-initialized class scoring layer"); > 0 draws a truncated normal."""
    conv = Conv2d(in_channels, num_classes, 1)
    if init_std > 0:
        nn.init.trunc_normal_(conv.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
    else:
        nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def align_to(x: torch.Tensor, size: Sequence[int], mode: str = "crop") -> torch.Tensor:
    """Bring ``x`` (N, C, h, w) to spatial ``size``.

    ``"crop"``: maps are top-left aligned (cell ``j`` of a stride-s map covers input pixels
    ``[s j, s (j + 1))``), so extra rows / columns are cut at the bottom / right and missing
    ones are replicated from the last row / column. ``"interpolate"``: bilinear resize.
    """
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if mode == "interpolate":
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if mode != "crop":
        raise ValueError(f"align mode must be one of {SKIP_ALIGNS}, got {mode!r}")
    x = x[..., :h, :w]
    pad_h, pad_w = h - x.shape[-2], w - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def upsample_scores(
    scores: torch.Tensor, stride: int, size: Optional[Sequence[int]] = None
) -> torch.Tensor:
    """Bilinear ×``stride`` upsampling of a stride-``stride`` score map (cell-aligned,
    ``align_corners=False``), then cropped / padded to ``size`` when given."""
    if stride > 1:
        h, w = scores.shape[-2:]
        scores = F.interpolate(
            scores, size=(h * stride, w * stride), mode="bilinear", align_corners=False
        )
    return scores if size is None else align_to(scores, size, "crop")


def pixel_softmax_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_value: int = 255, reduction: str = "sum"
) -> torch.Tensor:
    """Softmax cross-entropy per pixel, pixels labelled ``ignore_value`` excluded.

    ``"sum"``: summed over each image's pixels and averaged over the images of the batch (seed
    004 §2.5.1 / §4.2.2: "calculated for each pixel and then summed over the entire image,
    generating the loss for one image"). ``"mean"``: averaged over the labelled pixels of the
    batch (detectron2's semantic heads).
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    total = F.cross_entropy(logits, targets, ignore_index=ignore_value, reduction="sum")
    if reduction == "sum":
        return total / logits.shape[0]
    return total / (targets != ignore_value).sum().clamp(min=1)


class ScoringHead(nn.Module):
    """Base of the low-cost heads: subclasses build ``self.scores(features) -> (scores,
    stride)``; this class upsamples the scores to the input size (bilinear, §4.2.1) and
    computes the loss, following detectron2's semantic-head interface ``forward(features,
    targets) -> (predictions, losses)`` used by :class:`~detectron2.modeling.SemanticSegmentor`.

    Output size: the score map's size times its stride, which equals the (padded) input size
    for backbones whose stride-s maps have ``ceil(H / s)`` cells and inputs padded to the
    backbone's ``size_divisibility``; with ``targets`` (or ``image_size``) the output is
    cropped / padded to their size.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        loss_reduction: str = "sum",
        softmax_before_upsample: bool = True,
    ):
        super().__init__()
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(
                f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}"
            )
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.loss_reduction = loss_reduction
        self.softmax_before_upsample = softmax_before_upsample

    @staticmethod
    def common_config(cfg) -> Dict:
        h, c = cfg.MODEL.SEM_SEG_HEAD, cfg.MODEL.LOWCOST_SEG
        return {
            "num_classes": h.NUM_CLASSES,
            "ignore_value": h.IGNORE_VALUE,
            "loss_weight": h.LOSS_WEIGHT,
            "loss_reduction": c.LOSS_REDUCTION,
            "softmax_before_upsample": c.SOFTMAX_BEFORE_UPSAMPLE,
        }

    def forward(
        self,
        features: Dict[str, torch.Tensor],
        targets: Optional[torch.Tensor] = None,
        image_size: Optional[Tuple[int, int]] = None,
    ):
        scores, stride = self.scores(features)
        size = targets.shape[-2:] if targets is not None else image_size
        if self.training:
            if targets is None:
                raise ValueError("training a low-cost segmentation head needs sem_seg targets")
            logits = upsample_scores(scores, stride, size)
            return None, self.losses(logits, targets)
        if self.softmax_before_upsample:
            # §4.2.1: "a softmax operation followed by bilinear interpolation".
            scores = scores.softmax(dim=1)
        return upsample_scores(scores, stride, size), {}

    def losses(self, logits: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        loss = pixel_softmax_cross_entropy(logits, targets, self.ignore_value, self.loss_reduction)
        return {"loss_sem_seg": loss * self.loss_weight}
