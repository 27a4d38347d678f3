"""Mask targets, mask loss and mask pasting of the instance segmentation branches (Kolhatkar (2020)
§3.1.2 "Loss Function", §3.2.1 "Loss", "Mask Binarization Threshold").

* Targets: the ground-truth mask cropped to the box's *encompassing* box (what the branch
  sees) and resized to the branch's output resolution ("the groundtruth mask is resized to
  the size of the predicted mask"), one RoIAlign per branch over all its boxes (sampling
  ratio 0 averages several samples per output pixel when shrinking), then binarised at 0.5.
* Loss: sigmoid binary cross-entropy on the logits of the box's class, averaged over each
  box's pixels, then over every box of every branch, so that the loss does not grow with the
  number of branches in use (the reason the thesis gives for weighting multi-branch mask
  losses 150 instead of 30, §3.2.1 "Loss Weights", is that each branch sees fewer boxes).
* Pasting: a branch's mask covers the encompassing box; pasting it into the image is a
  bilinear resize of the logits to that box (``align_corners=False`` conventions, clamped at
  the mask's edges) followed by the threshold, computed only on each box's pixels, as two
  batched matrix products with per-box interpolation matrices per chunk of boxes. Masks of different branches have
  different sizes: they travel zero-padded to a common size with their valid (h, w).
  The threshold is a *logit* threshold: the thesis writes "a threshold of 0.0" for sigmoid
  masks, which read on probabilities would mark every pixel; our reading is logit 0
  (probability 0.5), ``MODEL.ISB.MASK_THRESHOLD``.
"""
from typing import Sequence, Tuple, Union, List

import torch
from torch.nn import functional as F
from torchvision.ops import roi_align

from detectron2.structures import BitMasks, PolygonMasks

__all__ = [
    "rasterize_masks",
    "mask_targets",
    "isb_mask_loss",
    "pad_mask_logits",
    "paste_mask_logits",
]


def rasterize_masks(gt_masks: Union[PolygonMasks, BitMasks, torch.Tensor], image_size) -> torch.Tensor:
    """(N, H, W) float masks of one image's ``gt_masks`` (polygons or bitmaps)."""
    if isinstance(gt_masks, PolygonMasks):
        if len(gt_masks) == 0:
            return torch.zeros(0, *image_size)
        gt_masks = BitMasks.from_polygon_masks(gt_masks, *image_size)
    if isinstance(gt_masks, BitMasks):
        gt_masks = gt_masks.tensor
    return gt_masks.to(torch.float32)


def mask_targets(
    masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor, out_size: Tuple[int, int]
) -> torch.Tensor:
    """Binary targets of the boxes of one branch.

    Args:
        masks: (G, H, W) float masks of every ground-truth instance of the batch.
        mask_index: (M,) the mask of each box.
        boxes: (M, 4) XYXY crop boxes (the encompassing boxes) in the masks' pixels.
        out_size: the branch's output (h, w).

    Returns:
        (M, h, w) float targets in {0, 1}.
    """
    if mask_index.numel() == 0:
        return masks.new_zeros((0, *out_size))
    rois = torch.cat([mask_index[:, None].to(boxes.dtype), boxes], dim=1).to(masks.dtype)
    resized = roi_align(masks[:, None], rois, tuple(out_size), 1.0, 0, aligned=True)
    return (resized[:, 0] >= 0.5).to(masks.dtype)


def isb_mask_loss(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over boxes of each box's mean pixel BCE; ``logits[b]`` / ``targets[b]`` are the
    (M_b, h_b, w_b) class-selected logits and targets of branch b. 0 when there is no box."""
    per_box = [
        F.binary_cross_entropy_with_logits(x, t, reduction="none").flatten(1).mean(1)
        for x, t in zip(logits, targets)
        if x.numel()
    ]
    if not per_box:
        return sum(x.sum() for x in logits) * 0.0 if logits else torch.zeros(())
    return torch.cat(per_box).mean()


def pad_mask_logits(
    logits: Sequence[torch.Tensor], index: Sequence[torch.Tensor], num_boxes: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gather per-branch logits into one per-box tensor.

    Args:
        logits: per branch, (M_b, h_b, w_b).
        index: per branch, the (M_b,) box indices.
        num_boxes: M; boxes of no branch get size (0, 0).

    Returns:
        (M, H, W) logits zero-padded to the largest branch output, and (M, 2) int64 valid
        sizes.
    """
    shapes = [x.shape[-2:] for x in logits if x.numel()]
    h = max([s[0] for s in shapes], default=1)
    w = max([s[1] for s in shapes], default=1)
    ref = logits[0] if logits else torch.zeros(0)
    padded = ref.new_zeros((num_boxes, h, w))
    sizes = torch.zeros((num_boxes, 2), dtype=torch.int64, device=ref.device)
    for x, idx in zip(logits, index):
        if idx.numel():
            padded[idx, : x.shape[1], : x.shape[2]] = x
            sizes[idx] = torch.tensor(x.shape[1:], device=ref.device)
    return padded, sizes


def _pixel_span(start: torch.Tensor, end: torch.Tensor, valid: torch.Tensor, length: int):
    """(first, count) of the image pixels along one axis whose centres lie in [start, end);
    count 0 for boxes without a mask (``valid`` 0)."""
    first = torch.ceil(start - 0.5).clamp(0, length).to(torch.int64)
    last = torch.ceil(end - 0.5).clamp(0, length).to(torch.int64)
    return first, torch.where(valid > 0, (last - first).clamp(min=0), torch.zeros_like(first))


def _axis_weights(origin: torch.Tensor, length: int, start, end, valid, padded: int):
    """(N, length, padded) bilinear weights from the ``length`` output pixels that follow each
    box's ``origin`` to its mask pixels along one axis, and the (N, length) pixels inside the box."""
    centres = origin[:, None] + torch.arange(length, device=start.device) + 0.5
    extent = (end - start).clamp(min=1e-6)
    n = valid.clamp(min=1).to(torch.float32)
    u = (centres - start[:, None]) / extent[:, None] * n[:, None] - 0.5
    u = torch.minimum(u.clamp(min=0), n[:, None] - 1)
    low = u.floor()
    frac = u - low
    low = low.to(torch.int64)
    high = torch.minimum(low + 1, valid[:, None].clamp(min=1) - 1)
    weights = F.one_hot(low, padded) * (1 - frac)[..., None] + F.one_hot(high, padded) * frac[..., None]
    inside = (centres >= start[:, None]) & (centres < end[:, None]) & (valid[:, None] > 0)
    return weights, inside


def _chunks(hs: List[int], ws: List[int], budget: int):
    """Consecutive runs of boxes (heights ``hs``, widths ``ws``, sorted by decreasing area)
    whose block (largest height x largest width) times their length stays within ``budget``
    pixels (a box alone may exceed it); boxes without pixels are skipped. Yields (start,
    stop, block height, block width)."""
    start, block_h, block_w = 0, 0, 0
    for i, (h, w) in enumerate(zip(hs + [0], ws + [0])):
        grown_h, grown_w = max(block_h, h), max(block_w, w)
        if i == len(hs) or h * w == 0 or (i > start and grown_h * grown_w * (i - start + 1) > budget):
            if i > start:
                yield start, i, block_h, block_w
            if i == len(hs) or h * w == 0:
                return  # sorted by area: the remaining boxes are empty too
            start, grown_h, grown_w = i, h, w
        block_h, block_w = grown_h, grown_w


def paste_mask_logits(
    logits: torch.Tensor,
    sizes: torch.Tensor,
    boxes: torch.Tensor,
    image_size: Tuple[int, int],
    threshold: float = 0.0,
    pixels_per_chunk: int = 1 << 20,
) -> torch.Tensor:
    """Paste box-aligned mask logits into the image and binarise them.

    Only each box's own pixels are computed: boxes are sorted by pixel area and grouped into
    chunks whose blocks (the chunk's largest height x largest width, placed inside the image
    over each box) hold at most ``pixels_per_chunk`` pixels in all (at least one box); a
    chunk resizes its masks with two batched matrix products and copies each block into its
    box's rectangle of the output. Small chunks keep the float blocks in memory the
    allocator reuses instead of paging it in afresh.

    Args:
        logits: (N, h, w) logits, zero-padded; ``sizes`` gives each one's valid (h, w)
            (0 = no mask: an empty mask).
        boxes: (N, 4) XYXY boxes, in output pixels, that the masks cover.
        image_size: output (H, W).
        threshold: logit above which a pixel is foreground.
        pixels_per_chunk: bound on the block pixels of a chunk of boxes.

    Returns:
        (N, H, W) bool masks.
    """
    height, width = int(image_size[0]), int(image_size[1])
    num = logits.shape[0]
    out = torch.zeros((num, height, width), dtype=torch.bool, device=logits.device)
    if num == 0:
        return out
    boxes = boxes.to(torch.float32)
    logits = logits.to(torch.float32)
    y_first, y_count = _pixel_span(boxes[:, 1], boxes[:, 3], sizes[:, 0], height)
    x_first, x_count = _pixel_span(boxes[:, 0], boxes[:, 2], sizes[:, 1], width)
    order = torch.argsort(y_count * x_count, descending=True)
    # The chunk plan and the copy positions, read back to the host once.
    boxes_h, hs, ws, ys, xs = torch.stack(
        [order, y_count[order], x_count[order], y_first[order], x_first[order]]
    ).tolist()
    for start, stop, block_h, block_w in _chunks(hs, ws, pixels_per_chunk):
        chunk = order[start:stop]
        # Blocks start at the box, moved back where needed to stay inside the image.
        tops = [min(y, height - block_h) for y in ys[start:stop]]
        lefts = [min(x, width - block_w) for x in xs[start:stop]]
        y0 = torch.minimum(y_first[chunk], torch.full_like(y_first[chunk], height - block_h))
        x0 = torch.minimum(x_first[chunk], torch.full_like(x_first[chunk], width - block_w))
        b, s = boxes[chunk], sizes[chunk]
        wy, in_y = _axis_weights(y0, block_h, b[:, 1], b[:, 3], s[:, 0], logits.shape[1])
        wx, in_x = _axis_weights(x0, block_w, b[:, 0], b[:, 2], s[:, 1], logits.shape[2])
        if threshold >= 0:
            # Zero weights outside the box give logit 0 there, never above the threshold.
            block = (wy * in_y[..., None]) @ logits[chunk] @ (wx * in_x[..., None]).transpose(1, 2)
            block = block > threshold
        else:
            block = (wy @ logits[chunk] @ wx.transpose(1, 2)) > threshold
            block &= in_y[:, :, None] & in_x[:, None, :]
        # One rectangle per box: slice copies, several times cheaper than an indexed
        # assignment that computes an offset for every pixel.
        for box, top, left, pixels in zip(boxes_h[start:stop], tops, lefts, block):
            out[box, top : top + block_h, left : left + block_w] = pixels
    return out
