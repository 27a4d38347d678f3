"""Encompassing boxes and cell-aligned crops (Kolhatkar (2020) §3.1.3, §3.1.5 "Implementation").

A box is grown outwards to the cell boundaries of the stride-32 feature grid; its *shape*
is its (height, width) in cells. Because the encompassing box lies on cell edges, its crop
from the stride-32 map, and the same box's crop from the stride-16 / stride-8 maps (cells
x 2 / x 4), are plain index gathers: no RoIAlign interpolation (§3.1.3).

The math is the torch twin of :mod:`panext_d2.data.builders.cells` (used to build the
ISB-shape dataset), so a box gets the same shape in the data builder and in the model.

Cell boxes are ``(x0, y0, x1, y1)`` integer cell indices, end-exclusive, in stride-32 cells.
Every function here handles all boxes of a batch at once (``image_index`` says which image
of the batch each box belongs to); none loops over boxes.
"""
from typing import Sequence, Tuple, Union

import torch
from torch.nn import functional as F

__all__ = [
    "encompassing_cells",
    "cell_shapes",
    "cells_to_boxes",
    "crop_cells",
    "crop_resize_cells",
]

SizeLike = Union[Sequence[int], torch.Tensor]


def encompassing_cells(
    boxes: torch.Tensor, image_size: SizeLike, grid_size: Sequence[int], eps: float = 1e-6
) -> torch.Tensor:
    """Cell box enclosing each XYXY box.

    Args:
        boxes: (N, 4) XYXY boxes in pixels of an image of ``image_size``.
        image_size: (H, W) of that image, or an (N, 2) tensor of per-box sizes.
        grid_size: (rows, cols) of the feature grid the image maps onto (20x20 at 640).
        eps: tolerance in cells, so that a coordinate on a cell edge up to float error does
            not take one more cell.

    Returns:
        (N, 4) int64 ``(x0, y0, x1, y1)`` clipped to the grid, at least one cell each way.
    """
    device = boxes.device
    boxes = boxes.reshape(-1, 4).to(torch.float64)
    hw = torch.as_tensor(image_size, dtype=torch.float64, device=device).reshape(-1, 2)
    hw = hw.expand(boxes.shape[0], 2)
    grid = torch.tensor([grid_size[1], grid_size[0]], dtype=torch.float64, device=device)
    scale = grid / hw.flip(1)  # (N, 2) cells per pixel in (x, y)
    lo = torch.minimum(torch.floor(boxes[:, :2] * scale + eps).clamp(min=0), grid - 1)
    hi = torch.maximum(torch.ceil(boxes[:, 2:] * scale - eps), lo + 1)
    hi = torch.minimum(hi.clamp(min=1), grid)
    return torch.cat([lo, hi], dim=1).to(torch.int64)


def cell_shapes(cells: torch.Tensor) -> torch.Tensor:
    """(N, 2) int64 (height, width) in cells of (N, 4) cell boxes."""
    return torch.stack([cells[:, 3] - cells[:, 1], cells[:, 2] - cells[:, 0]], dim=1)


def cells_to_boxes(cells: torch.Tensor, stride: float) -> torch.Tensor:
    """(N, 4) float XYXY pixel boxes of (N, 4) cell boxes on a grid of the given stride."""
    return cells.to(torch.float32) * stride


def crop_cells(
    feature: torch.Tensor,
    image_index: torch.Tensor,
    cells: torch.Tensor,
    shape: Tuple[int, int],
    scale: int = 1,
) -> torch.Tensor:
    """Exact crops of boxes that all have the same cell shape: one gather, no interpolation.

    Args:
        feature: (B, C, H, W) map whose stride is the stride-32 grid's divided by ``scale``
            (1: the stride-32 map, 2: stride 16, 4: stride 8).
        image_index: (M,) image of the batch each box belongs to.
        cells: (M, 4) stride-32 cell boxes, all of shape ``shape``.
        shape: (h, w) in stride-32 cells.

    Returns:
        (M, C, h * scale, w * scale).
    """
    h, w = int(shape[0]) * scale, int(shape[1]) * scale
    device = feature.device
    rows = cells[:, 1, None] * scale + torch.arange(h, device=device)  # (M, h)
    cols = cells[:, 0, None] * scale + torch.arange(w, device=device)  # (M, w)
    channels_last = feature.permute(0, 2, 3, 1)
    crops = channels_last[image_index[:, None, None], rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2)


def _sample_coords(start: torch.Tensor, size: torch.Tensor, out: int) -> torch.Tensor:
    """(M, out) index-space coordinates (pixel i has centre i) of ``out`` half-pixel-centred
    samples of ``[start, start + size)`` (``align_corners=False``), clamped to the centres of
    the box's first and last pixels: sampling there repeats the box's edge pixels, exactly as
    resizing the crop alone would."""
    # float64 so that the normalised grid below is exact to float32 precision.
    centres = torch.arange(out, device=start.device, dtype=torch.float64) + 0.5
    size_f = size.to(torch.float64)[:, None]
    u = centres[None] * (size_f / out) - 0.5
    u = torch.minimum(u.clamp(min=0), size_f - 1)
    return u + start.to(torch.float64)[:, None]


def _interpolation_matrix(coords: torch.Tensor, size: int, dtype) -> torch.Tensor:
    """(M, n, size) bilinear weights of (M, n) index-space coordinates inside [0, size - 1]."""
    low = coords.floor()
    frac = (coords - low).to(dtype)[..., None]
    low = low.to(torch.int64)
    high = (low + 1).clamp(max=size - 1)
    return F.one_hot(low, size).to(dtype) * (1 - frac) + F.one_hot(high, size).to(dtype) * frac


def _running_max(result, sample, in_place: bool):
    """The maximum of the pooled sub-grids so far (``result`` None before the first)."""
    if result is None:
        return sample
    return torch.maximum(result, sample, out=result) if in_place else torch.maximum(result, sample)


def _resize_by_grid_sample(feature, groups, ys, xs, out_h, out_w, factor, in_place):
    """(M, C, out_h, out_w): per image, one ``grid_sample`` batch entry per box over the
    image's map expanded (not copied), so the kernel runs the boxes in parallel; pooled crops
    are the running maximum of the ``factor`` x ``factor`` sub-grids."""
    num, height, width = ys.shape[0], feature.shape[2], feature.shape[3]
    # Index-space coordinates -> grid_sample's normalised ones (align_corners=False).
    gy = ((2 * ys + 1) / height - 1).view(num, out_h, factor).to(feature.dtype)
    gx = ((2 * xs + 1) / width - 1).view(num, out_w, factor).to(feature.dtype)
    out = None
    for image, boxes in groups:
        n = num if boxes is None else boxes.numel()
        maps = feature[image : image + 1].expand(n, -1, -1, -1)
        gx_b, gy_b = (gx, gy) if boxes is None else (gx[boxes], gy[boxes])
        result = None
        for py in range(factor):
            for px in range(factor):
                grid = torch.stack(torch.broadcast_tensors(gx_b[:, None, :, px], gy_b[:, :, None, py]), dim=-1)
                sample = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
                result = _running_max(result, sample, in_place)
        if boxes is None:
            return result
        if out is None:
            out = result.new_empty((num, *result.shape[1:]))
        out[boxes] = result
    return out


def _window(maps, image, starts, sizes, index):
    """The rectangle of ``maps[image]`` (H, W, C) as tall as the tallest and as wide as the
    widest of the boxes ``index``, placed over each box (moved back where needed to stay inside the map): (origins
    (n, 2), rows-by-columns source). The whole map, not copied, when a box spans it all."""
    height, width, channels = maps.shape[1:]
    win_h, win_w = (int(v) for v in sizes[index].max(dim=0).values)
    if win_h == height and win_w == width:
        return starts.new_zeros((index.numel(), 2)), maps[image].reshape(height, width * channels)
    limit = torch.tensor([height - win_h, width - win_w], device=starts.device)
    origins = torch.minimum(starts[index], limit)
    rows = origins[:, 0, None] + torch.arange(win_h, device=starts.device)
    cols = origins[:, 1, None] + torch.arange(win_w, device=starts.device)
    window = maps[image][rows[:, :, None], cols[:, None, :]]  # (n, win_h, win_w, C)
    return origins, window.reshape(index.numel(), win_h, win_w * channels)


def _resize_by_matmul(feature, groups, ys, xs, out_h, out_w, factor, in_place, starts, sizes):
    """(M, C, out_h, out_w) through separable interpolation matrices: per image, the boxes'
    windows (:func:`_window`) go through one matrix product over their rows per sub-grid row,
    then one batched product over their columns; pooled crops are the running maximum of the
    sub-grids. Windows as large as the chunk's largest box sizes, not the whole map, make the products
    several times cheaper for small boxes (the caller groups boxes of similar size).
    Returned in channels-last memory format."""
    num, channels = ys.shape[0], feature.shape[1]
    maps = feature.permute(0, 2, 3, 1)  # (B, H, W, C): a view for channels-last maps
    out = None  # allocated from the first result: autocast may change the dtype
    everything = torch.arange(num, device=ys.device)
    for image, boxes in groups:
        index = everything if boxes is None else boxes
        n = index.numel()
        origins, source = _window(maps, image, starts, sizes, index)
        win_h, win_w = source.shape[-2], source.shape[-1] // channels
        wy = _interpolation_matrix(ys[index] - origins[:, :1], win_h, feature.dtype)
        wx = _interpolation_matrix(xs[index] - origins[:, 1:], win_w, feature.dtype)
        wy, wx = wy.view(n, out_h, factor, win_h), wx.view(n, out_w, factor, win_w)
        result = None
        for py in range(factor):
            sampled_rows = torch.matmul(wy[:, :, py], source).view(n, out_h, win_w, channels)
            for px in range(factor):
                sample = torch.matmul(wx[:, None, :, px], sampled_rows)  # (n, out_h, out_w, C)
                result = _running_max(result, sample, in_place)
        if boxes is None:
            return result.permute(0, 3, 1, 2)
        if out is None:
            out = result.new_empty((num, *result.shape[1:]))
        out[boxes] = result
    return out.permute(0, 3, 1, 2)


def crop_resize_cells(
    feature: torch.Tensor,
    image_index: torch.Tensor,
    cells: torch.Tensor,
    out_size: Tuple[int, int],
    scale: int = 1,
    pool: bool = False,
) -> torch.Tensor:
    """Crops of boxes of any cell shape, each resized bilinearly to ``out_size``.

    Equal to cropping each box exactly and calling ``F.interpolate(crop, out_size,
    mode="bilinear", align_corners=False)`` (what TF's resize does with half-pixel
    centres), for all boxes at once, straight from the feature map, with sample coordinates
    clamped to each box's edge pixels (so each crop is clamped at its own edges, never
    blended with its neighbourhood as RoIAlign would). A box whose shape already is
    ``out_size`` comes back unchanged.

    Two exact implementations, chosen by cost: ``grid_sample`` (4 taps per sample and
    channel) straight from the map, and, for the pooled crops, whose doubled grid makes the
    samples four times as many, separable interpolation matrices applied as matrix products
    to windows of the map (several times faster on CPU for the Single-Branch's 1024
    channels; cheapest when the boxes passed together have similar sizes).

    Args:
        feature, image_index, cells, scale: as in :func:`crop_cells`.
        out_size: (h, w) in stride-32 cells; the crop is ``(h * scale, w * scale)``.
        pool: resize to twice that size, then 2x2 max-pool (Mask R-CNN's crop, used by the
            Single-Branch ISB, Kolhatkar (2020) §3.1.4). Computed as the maximum of the four
            sub-grids of the doubled grid, so the doubled crop is never stored.

    Returns:
        (M, C, h * scale, w * scale).
    """
    factor = 2 if pool else 1
    out_h, out_w = int(out_size[0]) * scale, int(out_size[1]) * scale
    num, channels = cells.shape[0], feature.shape[1]
    if num == 0:
        return feature.new_empty((0, channels, out_h, out_w))
    starts = torch.stack([cells[:, 1], cells[:, 0]], dim=1) * scale  # (M, 2) as (y, x)
    sizes = torch.stack([cells[:, 3] - cells[:, 1], cells[:, 2] - cells[:, 0]], dim=1) * scale
    ys = _sample_coords(starts[:, 0], sizes[:, 0], out_h * factor)
    xs = _sample_coords(starts[:, 1], sizes[:, 1], out_w * factor)
    if feature.shape[0] == 1:
        groups = [(0, None)]
    else:
        groups = [(i, torch.nonzero(image_index == i, as_tuple=True)[0]) for i in torch.unique(image_index).tolist()]
    in_place = not (torch.is_grad_enabled() and feature.requires_grad)
    if pool:
        return _resize_by_matmul(feature, groups, ys, xs, out_h, out_w, factor, in_place, starts, sizes)
    return _resize_by_grid_sample(feature, groups, ys, xs, out_h, out_w, factor, in_place)
