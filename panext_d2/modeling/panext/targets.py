"""Training targets of PaNeXt, built in the model from the mapper's ``instances`` and stuff
``sem_seg`` once the feature sizes are known (as PanopticFCN does).

All levels are handled in a flattened layout: a per-level map (B, C, H_l, W_l) becomes
(B, C, H_l * W_l) and the levels are concatenated along the last axis (length S).
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch.nn import functional as F


@dataclass
class PanopticTargets:
    """Targets of one batch. M things and N stuff objects, over the whole batch."""

    centers: List[torch.Tensor]  # per level (B, C_th, H_l, W_l) Gaussian center heatmaps
    stuff_maps: List[torch.Tensor]  # per level (B, C_st, H_l, W_l) one-hot stuff maps
    thing_batch: torch.Tensor  # (M,) image index
    thing_classes: torch.Tensor  # (M,) thing class index
    thing_masks: torch.Tensor  # (M, H4, W4) mask fraction of each stride-4 cell
    thing_regions: torch.Tensor  # (M, S) bool: cells of the object at its assigned levels
    stuff_batch: torch.Tensor  # (N,) image index
    stuff_classes: torch.Tensor  # (N,) stuff class index
    stuff_masks: torch.Tensor  # (N, H4, W4) binary stuff masks at stride 4

    @property
    def num_objects(self) -> int:
        return len(self.thing_batch) + len(self.stuff_batch)


def flatten_levels(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """[(B, C, H_l, W_l)] -> (B, C, S)."""
    return torch.cat([m.flatten(2) for m in maps], dim=2)


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float) -> torch.Tensor:
    """CenterNet's radius rule (the three corner cases, as CenterNet and PanopticFCN code it)."""
    mo = min_overlap
    b1 = height + width
    c1 = width * height * (1 - mo) / (1 + mo)
    r1 = (b1 + (b1**2 - 4 * c1).clamp(min=0).sqrt()) / 2
    b2 = 2 * (height + width)
    c2 = (1 - mo) * width * height
    r2 = (b2 + (b2**2 - 16 * c2).clamp(min=0).sqrt()) / 2
    a3 = 4 * mo
    b3 = -2 * mo * (height + width)
    c3 = (mo - 1) * width * height
    r3 = (b3 + (b3**2 - 4 * a3 * c3).clamp(min=0).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def assign_levels(scales: torch.Tensor, ranges: Sequence[Tuple[float, float]]) -> torch.Tensor:
    """(M, L) bool: level l takes an object whose scale lies in ranges[l]; scales outside
    every range are clamped into the covered interval first."""
    lo = torch.tensor([r[0] for r in ranges], dtype=scales.dtype, device=scales.device)
    hi = torch.tensor([r[1] for r in ranges], dtype=scales.dtype, device=scales.device)
    s = scales.clamp(min=lo.min(), max=hi.max())[:, None]
    return (s >= lo) & (s <= hi)


def gaussian_maps(cx, cy, radius, size: Tuple[int, int]) -> torch.Tensor:
    """(M, H, W) CenterNet Gaussians (sigma = diameter / 6) in a (2r+1)^2 window around the
    integer cells (cx, cy); the value at the center cell is exactly 1."""
    h, w = size
    sigma = (2 * radius + 1).float() / 6
    dx = torch.arange(w, device=cx.device)[None] - cx[:, None]
    dy = torch.arange(h, device=cy.device)[None] - cy[:, None]
    gx = torch.exp(-(dx.float() ** 2) / (2 * sigma[:, None] ** 2)) * (dx.abs() <= radius[:, None])
    gy = torch.exp(-(dy.float() ** 2) / (2 * sigma[:, None] ** 2)) * (dy.abs() <= radius[:, None])
    return gy[:, :, None] * gx[:, None, :]


def _image_things(instances, padded_size, hr_stride):
    """Masks padded to the batch size: stride-4 fractions, exact centroids and box sizes."""
    masks = instances.gt_masks.tensor
    h, w = masks.shape[-2:]
    padded = F.pad(masks.float(), (0, padded_size[1] - w, 0, padded_size[0] - h))
    hr = F.avg_pool2d(padded[:, None], hr_stride)[:, 0]
    area = masks.flatten(1).sum(1).clamp(min=1).float()
    xs = torch.arange(w, device=masks.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=masks.device, dtype=torch.float32) + 0.5
    cx = (masks.sum(1).float() * xs).sum(1) / area
    cy = (masks.sum(2).float() * ys).sum(1) / area
    boxes = instances.gt_boxes.tensor
    return hr, cx, cy, boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def build_thing_targets(
    instances_list,
    padded_size,
    level_sizes,
    level_strides,
    hr_stride,
    num_classes,
    scale_ranges,
    min_overlap,
):
    """Center heatmaps per level plus per-thing masks, classes and level regions."""
    device = instances_list[0].gt_classes.device if instances_list else torch.device("cpu")
    per_image = [_image_things(inst, padded_size, hr_stride) for inst in instances_list]
    hr, cx, cy, bw, bh = (torch.cat(parts) for parts in zip(*per_image))
    batch = torch.cat(
        [
            torch.full((len(i),), b, dtype=torch.long, device=device)
            for b, i in enumerate(instances_list)
        ]
    )
    classes = torch.cat([i.gt_classes for i in instances_list]).long()
    levels = assign_levels((bw * bh).clamp(min=0).sqrt(), scale_ranges)

    num_images, num = len(instances_list), len(classes)
    centers, regions = [], []
    for lvl, ((h, w), stride) in enumerate(zip(level_sizes, level_strides)):
        icx = (cx / stride).long().clamp(0, w - 1)
        icy = (cy / stride).long().clamp(0, h - 1)
        radius = gaussian_radius(bh / stride, bw / stride, min_overlap).long().clamp(min=0)
        gauss = gaussian_maps(icx, icy, radius, (h, w)) * levels[:, lvl, None, None]
        heat = torch.zeros(num_images * num_classes, h * w, device=device)
        heat.index_reduce_(0, batch * num_classes + classes, gauss.flatten(1), "amax")
        centers.append(heat.view(num_images, num_classes, h, w))

        inside = F.adaptive_avg_pool2d(hr[:, None], (h, w))[:, 0] >= 0.5
        inside[torch.arange(num, device=device), icy, icx] = True
        regions.append((inside & levels[:, lvl, None, None]).flatten(1))
    return centers, batch, classes, hr, torch.cat(regions, dim=1)


def build_stuff_targets(sem_segs, padded_size, level_sizes, hr_stride, num_classes, ignore_value):
    """One-hot stuff maps per level (majority class of each cell, non-stuff included as a
    class of its own) and binary stride-4 masks of the stuff classes present."""
    labels = torch.stack(
        [
            F.pad(
                s.long(),
                (0, padded_size[1] - s.shape[1], 0, padded_size[0] - s.shape[0]),
                value=ignore_value,
            )
            for s in sem_segs
        ]
    )
    off = hr_stride // 2
    labels = labels[:, off::hr_stride, off::hr_stride]
    labels = torch.where((labels >= 0) & (labels < num_classes), labels, num_classes)
    onehot = F.one_hot(labels, num_classes + 1).permute(0, 3, 1, 2).float()
    maps = []
    for size in level_sizes:
        winner = F.adaptive_avg_pool2d(onehot, size).argmax(1)
        maps.append(F.one_hot(winner, num_classes + 1).permute(0, 3, 1, 2)[:, :num_classes].float())
    present = flatten_levels(maps).amax(2) > 0  # (B, C_st)
    batch, classes = present.nonzero(as_tuple=True)
    return maps, batch, classes, onehot[batch, classes]


def build_targets(
    instances_list,
    sem_segs,
    padded_size,
    level_sizes,
    level_strides,
    hr_stride,
    num_thing_classes,
    num_stuff_classes,
    scale_ranges,
    min_overlap,
    ignore_value,
):
    centers, tb, tc, tm, tr = build_thing_targets(
        instances_list,
        padded_size,
        level_sizes,
        level_strides,
        hr_stride,
        num_thing_classes,
        scale_ranges,
        min_overlap,
    )
    maps, sb, sc, sm = build_stuff_targets(
        sem_segs, padded_size, level_sizes, hr_stride, num_stuff_classes, ignore_value
    )
    return PanopticTargets(centers, maps, tb, tc, tm, tr, sb, sc, sm)


def select_thing_positions(scores: torch.Tensor, targets: PanopticTargets, k: int):
    """The k top-scoring cells of each thing inside its region, for its ground-truth class.

    Args:
        scores: (B, C_th, S) predicted center probabilities (detached).
    Returns:
        positions (M, k) indices into S, weights (M, k): the scores normalised over the k
        positions (0 where a region has fewer than k cells).
    """
    k = min(k, scores.shape[2])
    cand = scores[targets.thing_batch, targets.thing_classes]
    cand = torch.where(targets.thing_regions, cand, cand.new_tensor(-1.0))
    values, positions = cand.topk(k, dim=1)
    values = values.clamp(min=0) * (values >= 0)
    weights = values / values.sum(1, keepdim=True).clamp(min=1e-12)
    return positions, weights


def stuff_kernels(stuff_scores: torch.Tensor, regions: torch.Tensor, kernels: torch.Tensor):
    """Per-class kernels: score-weighted average of the kernels over each class' region.

    Args:
        stuff_scores, regions: (B, C_st, S); kernels: (B, D, S).
    Returns:
        (B, C_st, D) kernels and (B, C_st) sums of the weights.
    """
    weights = (stuff_scores * regions).float()  # float32: sums over ~10k cells
    total = weights.sum(2)
    avg = torch.einsum("bcs,bds->bcd", weights, kernels.float()) / total.clamp(min=1e-12)[..., None]
    return avg, total


def stuff_kernels_per_level(regions: List[torch.Tensor], kernels: List[torch.Tensor]):
    """PanopticFCN's stuff kernels: per level, the kernels inside a class' region summed and
    divided by the level's cell count (average pooling of the masked kernel map), so every
    position of the region counts equally (k = 1 for stuff, Debucean (2022) §3.3.3).

    Args:
        regions: per level (B, C_st, S_l) binary maps; kernels: per level (B, D, S_l).
    Returns:
        (L, B, C_st, D) kernels and (L, B, C_st) whether the class has a region on the level.
    """
    pooled = [  # float32: a region's sum over ~10k cells can pass float16's range
        torch.einsum("bcs,bds->bcd", r.float(), k.float()) / r.shape[2]
        for r, k in zip(regions, kernels)
    ]
    present = [r.amax(2) > 0 for r in regions]
    return torch.stack(pooled), torch.stack(present)


def training_stuff_kernels(mode: str, stuff_scores, kernels, targets):
    """Kernels of the N ground-truth stuff regions and, for each, the index of its stuff
    object. "panopticfcn": one kernel per level where the region exists (each with its
    own Dice term); "score_weighted": one per region, the kernels weighted by the
    predicted stuff scores over all levels."""
    if mode == "score_weighted":
        stuff_k, _ = stuff_kernels(stuff_scores, flatten_levels(targets.stuff_maps), kernels)
        objects = torch.arange(len(targets.stuff_batch), device=kernels.device)
        return stuff_k[targets.stuff_batch, targets.stuff_classes], objects
    sizes = [m.shape[2] * m.shape[3] for m in targets.stuff_maps]
    pooled, present = stuff_kernels_per_level(
        [m.flatten(2) for m in targets.stuff_maps], kernels.split(sizes, dim=2)
    )
    level, objects = present[:, targets.stuff_batch, targets.stuff_classes].nonzero(as_tuple=True)
    return pooled[level, targets.stuff_batch[objects], targets.stuff_classes[objects]], objects
