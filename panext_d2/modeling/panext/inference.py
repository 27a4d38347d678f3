"""PaNeXt inference (PanopticFCN's): center NMS and top-k, kernel fusion by average
clustering, mask prediction and the panoptic merge into detectron2's output formats."""

from typing import Dict, List, Optional, Tuple

import torch
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import Boxes, Instances
from torch.nn import functional as F

from ...utils.grouping import rank_in_group


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

    The decisions stay on the device (no host round trip per candidate); segments_info is
    read back once at the end.
    """
    h, w = stuff_probs.shape[-2:] if len(stuff_probs) else thing_masks.shape[-2:]
    device = stuff_probs.device if len(stuff_probs) else thing_masks.device
    panoptic = torch.zeros((h, w), dtype=torch.int32, device=device)
    order = torch.argsort(thing_scores, descending=True)
    masks = thing_masks[order]
    areas = (thing_masks.flatten(1).sum(1) if thing_areas is None else thing_areas)[order]
    eligible = (thing_scores[order] >= score_thresh) & (areas > 0)
    thing_segment = torch.zeros(len(order), dtype=torch.int32, device=device)
    count = torch.zeros((), dtype=torch.int32, device=device)
    # Greedy and order-dependent (each decision sees the pixels already taken), like
    # detectron2's combine_semantic_and_instance_outputs.
    for i in range(len(order)):
        mask = masks[i] & (panoptic == 0)
        visible = mask.flatten().sum()
        covered = 1 - visible.double() / areas[i].double().clamp(min=1)
        keep = eligible[i] & (visible > 0) & (covered <= overlap_thresh)
        count = count + keep.int()
        thing_segment[i] = torch.where(keep, count, 0)
        panoptic = torch.where(mask & keep, count, panoptic)
    stuff_segment = torch.zeros(len(stuff_probs), dtype=torch.int32, device=device)
    stuff_areas = torch.zeros(len(stuff_probs), dtype=torch.long, device=device)
    if len(stuff_probs):
        best, label = stuff_probs.max(0)
        free = (panoptic == 0) & (best > mask_thresh)
        stuff_areas = torch.zeros(len(stuff_probs), dtype=torch.long, device=device).scatter_add_(
            0, label.flatten(), free.flatten().long()
        )
        keep = stuff_areas >= max(stuff_area_limit, 1)
        stuff_segment = torch.where(keep, keep.int().cumsum(0, dtype=torch.int32) + count, 0)
        panoptic = torch.where(free, torch.maximum(panoptic, stuff_segment[label]), panoptic)

    # One read-back of the decisions.
    thing_rows = torch.stack([thing_segment.double(), thing_scores[order].double(),
                              thing_ids[order].double(), order.double()], 1).tolist()
    stuff_rows = torch.stack([stuff_segment.double(), stuff_ids.double(),
                              stuff_areas.double()], 1).tolist()
    segments = [
        {"id": int(seg), "isthing": True, "score": score, "category_id": int(cls),
         "instance_id": int(index)}
        for seg, score, cls, index in thing_rows if seg > 0
    ]
    segments += [
        {"id": int(seg), "isthing": False, "category_id": int(cls), "area": int(area)}
        for seg, cls, area in stuff_rows if seg > 0
    ]
    return panoptic, segments


def boxes_from_masks(masks: torch.Tensor) -> Boxes:
    """XYXY boxes enclosing (N, H, W) boolean masks, on their device (all zeros for an empty
    mask), as detectron2's ``BitMasks.get_bounding_boxes`` computes them one by one."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[-2:]
    y0 = rows.int().argmax(1)
    y1 = h - rows.flip(1).int().argmax(1)
    x0 = cols.int().argmax(1)
    x1 = w - cols.flip(1).int().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return Boxes(boxes * rows.any(1, keepdim=True))


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
    result.pred_boxes = boxes_from_masks(masks)
    result.scores = scores
    result.pred_classes = classes
    return result


def match_size(hr: torch.Tensor, size) -> torch.Tensor:
    if tuple(hr.shape[-2:]) == tuple(size):
        return hr
    return F.interpolate(hr, size=size, mode="bilinear", align_corners=False)


def object_masks(kernels: torch.Tensor, owners: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mask logits (T, H, W) of T kernels, each applied to its own image's HR map, in one
    batched product over zero-padded per-image kernel sets."""
    num_images = hr.shape[0]
    slot = rank_in_group(owners, num_images)
    padded = kernels.new_zeros(num_images, int(slot.max()) + 1 if len(owners) else 0, kernels.shape[1])
    padded[owners, slot] = kernels
    return apply_kernels(padded, hr)[owners, slot]


def resize_masks(logits, padded_size, image_size, output_size) -> torch.Tensor:
    """Stride-4 mask logits (N, h, w) -> probabilities (N, H, W) at the output size:
    upsampled to the padded input, cropped to the image, resized to the output."""
    if len(logits) == 0:
        return logits.new_zeros((0,) + tuple(output_size))
    up = F.interpolate(logits[None], size=tuple(padded_size), mode="bilinear", align_corners=False)
    # Cropping before the sigmoid, and skipping sem_seg_postprocess' resize when the output
    # size is the image size (a bilinear resize to the same size is the identity), give
    # the same probabilities with less work.
    probs = up[0, :, : image_size[0], : image_size[1]].sigmoid()
    if tuple(output_size) == tuple(image_size):
        return probs
    return sem_seg_postprocess(probs, image_size, *output_size)
