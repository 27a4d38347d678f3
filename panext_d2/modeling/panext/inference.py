"""PaNeXt inference (PanopticFCN's): center NMS and top-k, kernel fusion by average
clustering, mask prediction and the panoptic merge into detectron2's output formats."""

from typing import Dict, List, Optional, Tuple

import torch
from detectron2.structures import BitMasks, Instances
from torch.nn import functional as F


def apply_kernels(kernels: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """1x1 dynamic convolution, batched: (B, N, D) kernels x (B, D, H, W) -> (B, N, H, W)."""
    return torch.einsum("bnd,bdhw->bnhw", kernels, features)


def center_peaks(logits: List[torch.Tensor], kernel_size: int) -> List[torch.Tensor]:
    """Sigmoid center heatmaps with every cell that is not a local maximum set to 0."""
    peaks = []
    for x in logits:
        heat = x.sigmoid()
        pooled = F.max_pool2d(heat, kernel_size, stride=1, padding=(kernel_size - 1) // 2)
        peaks.append(heat * (pooled == heat))
    return peaks


def top_things(scores: torch.Tensor, kernels: torch.Tensor, thresh: float, top_k: int):
    """One image's best thing candidates over all levels and classes.

    Args:
        scores: (C_th, S) peak scores; kernels: (D, S).
    Returns:
        kernels (N, D), scores (N,), classes (N,), sorted by decreasing score.
    """
    flat = scores.flatten()
    values, idx = flat.topk(min(top_k, flat.numel()))
    keep = values > thresh
    values, idx = values[keep], idx[keep]
    classes, positions = idx // scores.shape[1], idx % scores.shape[1]
    return kernels[:, positions].T, values, classes


def fuse_thing_kernels(
    kernels: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, similarity_thresh: float
):
    """Average clustering of kernels sorted by decreasing score, as PanopticFCN's
    ``kernel_fusion``: a kernel claims every lower-scored kernel of its class with cosine
    similarity >= thresh; each kernel belongs only to its first (highest-scored) claimer, and
    a kernel no higher-scored kernel claims starts a group. A group's kernel is the mean of its
    members, its score and class are its leader's; a kernel whose first claimer is itself
    claimed joins no group."""
    if len(kernels) == 0:
        return kernels, scores, classes
    unit = F.normalize(kernels, dim=1)
    similar = (unit @ unit.T >= similarity_thresh) & (classes[:, None] == classes[None, :])
    similar = similar | torch.eye(len(kernels), dtype=torch.bool, device=kernels.device)
    claims = torch.triu(similar)  # row i claims column j >= i
    first = claims & (claims.float().cumsum(0) == 1)  # j's first claimer
    leaders = first.diagonal()
    groups = first[leaders].float()
    fused = groups @ kernels / groups.sum(1, keepdim=True)
    return fused, scores[leaders], classes[leaders]


def stuff_candidates(scores: torch.Tensor, kernels: torch.Tensor, thresh: float):
    """Per stuff class, the score-weighted mean kernel over the cells (of every level) whose
    score exceeds ``thresh``; the class score is the mean score over those cells.

    Args:
        scores: (C_st, S); kernels: (D, S).
    Returns:
        kernels (N, D), scores (N,), classes (N,) of the classes found.
    """
    region = scores > thresh
    weights = scores.float() * region
    total = weights.sum(1)
    found = total > 0
    fused = (weights[found] @ kernels.float().T) / total[found, None]
    mean_score = total[found] / region[found].sum(1)
    return fused, mean_score, found.nonzero(as_tuple=True)[0]


def stuff_candidates_per_level(scores: List[torch.Tensor], kernels: List[torch.Tensor], thresh: float):
    """PanopticFCN's stuff kernels at inference, one image: on each level, a class' region is
    the cells whose score exceeds ``thresh``, its kernel the region's kernels summed and
    divided by the level's cell count, its score the mean score over the region; a class'
    kernel and score are then the means over the levels where it has a region. (PanopticFCN
    takes the region as the argmax over its stuff classes plus a "things" class, which our
    heads do not have, hence the per-class threshold.)

    Args:
        scores: per level (C_st, S_l); kernels: per level (D, S_l).
    Returns:
        kernels (N, D), scores (N,), classes (N,) of the classes found.
    """
    region = [(s > thresh).float() for s in scores]
    pooled = torch.stack([r @ k.float().T / r.shape[1] for r, k in zip(region, kernels)])  # (L, C, D)
    cells = torch.stack([r.sum(1) for r in region])  # (L, C)
    level_scores = torch.stack([(s.float() * r).sum(1) for s, r in zip(scores, region)])
    level_scores = level_scores / cells.clamp(min=1)
    on_level = (cells > 0).float()
    levels = on_level.sum(0)
    found = levels > 0
    fused = (pooled * on_level[..., None]).sum(0)[found] / levels[found, None]
    mean_score = (level_scores * on_level).sum(0)[found] / levels[found]
    return fused, mean_score, found.nonzero(as_tuple=True)[0]


def maskness(
    probs: torch.Tensor,
    thresh: float,
    binary: Optional[torch.Tensor] = None,
    areas: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean probability inside each binary mask (SOLOv2's rescoring); (N, H, W) -> (N,).
    ``binary`` (``probs > thresh``) and ``areas`` (its pixel counts) are reused if given."""
    if binary is None:
        binary = probs > thresh
    if areas is None:
        areas = binary.flatten(1).sum(1)
    inside = torch.where(binary, probs, probs.new_zeros(()))
    return inside.flatten(1).sum(1) / areas.clamp(min=1)


def panoptic_merge(
    thing_masks: torch.Tensor,
    thing_scores: torch.Tensor,
    thing_ids: torch.Tensor,
    stuff_probs: torch.Tensor,
    stuff_ids: torch.Tensor,
    *,
    mask_thresh: float,
    score_thresh: float,
    overlap_thresh: float,
    stuff_area_limit: int,
    thing_areas: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, List[Dict]]:
    """detectron2's panoptic format: an (H, W) int32 map of segment ids (0 = void) and
    segments_info with contiguous ``category_id`` and ``isthing``.

    Things are painted by decreasing score; one whose mask is already covered by more than
    ``overlap_thresh`` is dropped. Stuff takes each remaining pixel by the argmax of the
    stuff masks (probability > ``mask_thresh``) and is kept if its area is at least
    ``stuff_area_limit``. ``thing_areas`` (pixel counts of ``thing_masks``) is reused if given.
    """
    h, w = stuff_probs.shape[-2:] if len(stuff_probs) else thing_masks.shape[-2:]
    panoptic = torch.zeros((h, w), dtype=torch.int32, device=stuff_probs.device)
    segments = []
    order = torch.argsort(thing_scores, descending=True)
    order = order[thing_scores[order] >= score_thresh]
    areas = thing_masks.flatten(1).sum(1) if thing_areas is None else thing_areas
    # Greedy and order-dependent (each decision sees the pixels already taken), like
    # detectron2's combine_semantic_and_instance_outputs.
    for i in order.tolist():
        if areas[i] == 0:
            continue
        mask = thing_masks[i] & (panoptic == 0)
        visible = int(mask.sum())
        if visible == 0 or 1 - visible / float(areas[i]) > overlap_thresh:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append(
            {
                "id": len(segments) + 1,
                "isthing": True,
                "score": float(thing_scores[i]),
                "category_id": int(thing_ids[i]),
                "instance_id": int(i),
            }
        )
    if len(stuff_probs):
        best, label = stuff_probs.max(0)
        free = (panoptic == 0) & (best > mask_thresh)
        areas = torch.bincount(label[free], minlength=len(stuff_probs))
        keep = areas >= max(stuff_area_limit, 1)
        seg_of = torch.zeros(len(stuff_probs), dtype=torch.int32, device=panoptic.device)
        seg_of[keep] = (
            torch.arange(int(keep.sum()), dtype=torch.int32, device=panoptic.device)
            + len(segments)
            + 1
        )
        panoptic = torch.where(free, torch.maximum(panoptic, seg_of[label]), panoptic)
        for j in keep.nonzero(as_tuple=True)[0].tolist():
            segments.append(
                {
                    "id": int(seg_of[j]),
                    "isthing": False,
                    "category_id": int(stuff_ids[j]),
                    "area": int(areas[j]),
                }
            )
    return panoptic, segments


def semantic_scores(
    probs: torch.Tensor, scores: torch.Tensor, channels: torch.Tensor, num_channels: int
) -> torch.Tensor:
    """(C, H, W) per-class scores: for each class the max over its segments of
    score x mask probability."""
    sem = probs.new_zeros((num_channels,) + probs.shape[-2:])
    if len(probs):
        sem.index_reduce_(0, channels, probs * scores[:, None, None], "amax")
    return sem


def thing_instances(masks: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor) -> Instances:
    """detectron2 Instances with boolean pred_masks, boxes from the masks, scores, classes."""
    result = Instances(tuple(masks.shape[-2:]))
    result.pred_masks = masks
    result.pred_boxes = BitMasks(masks).get_bounding_boxes()
    result.scores = scores
    result.pred_classes = classes
    return result
