"""Vectorised drawing: shape masks from coordinate grids, textured fills, occlusion.

Masks are computed only inside the shape's bounding window (``np.ogrid`` broadcasting), so
drawing costs grow with the shape, not with the image. Coordinates are pixel centres.
"""

from typing import List, Sequence, Tuple

import numpy as np

HW = Tuple[int, int]


def window(hw: HW, cx: float, cy: float, half_w: float, half_h: float):
    """Slices of the image box around (cx, cy) and its ogrid coordinates ``(yy, xx)``."""
    h, w = hw
    y0, y1 = max(int(np.floor(cy - half_h)), 0), min(int(np.ceil(cy + half_h)) + 1, h)
    x0, x1 = max(int(np.floor(cx - half_w)), 0), min(int(np.ceil(cx + half_w)) + 1, w)
    yy, xx = np.ogrid[y0 : max(y1, y0), x0 : max(x1, x0)]
    return (slice(y0, y1), slice(x0, x1)), yy + 0.5, xx + 0.5


def _full(hw: HW, slices, inside: np.ndarray) -> np.ndarray:
    mask = np.zeros(hw, dtype=bool)
    mask[slices] = inside
    return mask


def _rotated(yy, xx, cx, cy, angle):
    """Coordinates (u, v) of the grid in a frame centred at (cx, cy) and rotated by angle."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xx - cx, yy - cy
    return c * dx + s * dy, -s * dx + c * dy


def ellipse(hw: HW, cx, cy, rx, ry, angle=0.0) -> np.ndarray:
    """A filled ellipse with radii (rx, ry), rotated by ``angle`` radians."""
    r = max(rx, ry)
    slices, yy, xx = window(hw, cx, cy, r, r)
    u, v = _rotated(yy, xx, cx, cy, angle)
    return _full(hw, slices, (u / rx) ** 2 + (v / ry) ** 2 <= 1.0)


def rectangle(hw: HW, cx, cy, half_w, half_h, angle=0.0) -> np.ndarray:
    """A filled rectangle with half sizes (half_w, half_h), rotated by ``angle`` radians."""
    r = float(np.hypot(half_w, half_h))
    slices, yy, xx = window(hw, cx, cy, r, r)
    u, v = _rotated(yy, xx, cx, cy, angle)
    return _full(hw, slices, (np.abs(u) <= half_w) & (np.abs(v) <= half_h))


def triangle(hw: HW, cx, cy, radius, angle=0.0) -> np.ndarray:
    """A filled equilateral triangle inscribed in the circle (cx, cy, radius)."""
    slices, yy, xx = window(hw, cx, cy, radius, radius)
    inside = np.ones(np.broadcast_shapes(yy.shape, xx.shape), dtype=bool)
    for k in range(3):
        # each edge is at distance radius/2 from the centre, its normal at angle + k*120deg
        a = angle + k * 2.0 * np.pi / 3.0
        inside &= np.cos(a) * (xx - cx) + np.sin(a) * (yy - cy) <= radius / 2.0
    return _full(hw, slices, inside)


def textured(rng: np.random.Generator, hw: HW, colour: Sequence[float], sigma: float):
    """An (H, W, 3) float image of ``colour`` plus Gaussian pixel noise of std ``sigma``."""
    noise = rng.normal(0.0, sigma, size=(*hw, 1)).astype(np.float32)
    return np.asarray(colour, dtype=np.float32) + noise


def paint(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, colour, sigma):
    """Fill ``image[mask]`` with ``colour`` plus per-pixel noise, in place."""
    n = int(mask.sum())
    noise = rng.normal(0.0, sigma, size=(n, 1)).astype(np.float32)
    image[mask] = np.asarray(colour, dtype=np.float32) + noise


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def visible_masks(masks: List[np.ndarray], min_area: int) -> List[Tuple[int, np.ndarray]]:
    """Occlusion in painting order (later masks lie on top).

    Returns ``(index, visible mask)`` for the masks that keep at least ``min_area`` visible
    pixels, in painting order; the others are dropped (they must not be painted), which does
    not change what the remaining ones show because only later masks occlude earlier ones.
    """
    kept = []
    covered = np.zeros(masks[0].shape, dtype=bool) if masks else None
    for index in reversed(range(len(masks))):
        visible = masks[index] & ~covered
        if visible.sum() >= min_area:
            kept.append((index, visible))
            covered |= masks[index]
    return kept[::-1]
