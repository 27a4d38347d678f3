"""Synthetic panoptic set: 3 stuff regions with wavy boundaries under 3 kinds of shapes.

Folder layout (written by :func:`generate`)::

    images/NNNNNN.jpg           RGB images
    panoptic/NNNNNN.png         COCO panoptic PNGs (id = R + 256 G + 256^2 B, 0 = void)
    panoptic.json               COCO panoptic JSON
    instances.json              COCO instance JSON (things, RLE of the visible masks)
    semantic/NNNNNN.png         contiguous labels over all categories, 255 = void
    panoptic_stuff/NNNNNN.png   Panoptic FPN labels: things 0, stuff 1..S, 255 = void
    generator.json              the generator parameters and version
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import drawing
from ...json_io import read_json, write_json
from .cache import check_files, regenerate_hint, write_generator_info
from ....utils.panoptic_conventions import (
    semantic_from_panoptic,
    separated_label_map,
    separated_metadata,
    standard_label_map,
    standard_metadata,
)
from ..panoptic_records import panoptic_dicts
from .formats import instance_record, segment_record, write_jpg, write_panoptic_png, write_png

KIND = "synthetic_panoptic"

# dataset ids leave a gap between things and stuff (like COCO) so that dataset ids and
# contiguous ids never coincide
CATEGORIES = [
    {"id": 1, "name": "circle", "isthing": 1, "color": [220, 40, 50], "supercategory": "shape"},
    {"id": 2, "name": "square", "isthing": 1, "color": [40, 90, 220], "supercategory": "shape"},
    {"id": 3, "name": "triangle", "isthing": 1, "color": [235, 210, 30], "supercategory": "shape"},
    {"id": 11, "name": "sky", "isthing": 0, "color": [130, 190, 240], "supercategory": "region"},
    {"id": 12, "name": "grass", "isthing": 0, "color": [60, 150, 60], "supercategory": "region"},
    {"id": 13, "name": "wall", "isthing": 0, "color": [165, 150, 130], "supercategory": "region"},
]
THINGS = [c for c in CATEGORIES if c["isthing"]]
STUFF = [c for c in CATEGORIES if not c["isthing"]]
# per-class colour jitter of things (uniform +-) and pixel-noise std of stuff textures
THING_JITTER = 35.0
THING_NOISE = 6.0
STUFF_NOISE = np.array([4.0, 14.0, 9.0], dtype=np.float32)
SEGMENT_ID_STRIDE = 1000  # segment id = category id * 1000 + instance number
MIN_VISIBLE_AREA = 20


@dataclass(frozen=True)
class PanopticParams:
    num_images: int = 400
    image_size: int = 128
    seed: int = 0
    max_things: int = 6
    min_thing_size: float = 12.0
    max_thing_size: float = 56.0


def _boundary(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random wavy line y(x): tilt + sine around a random height."""
    x = np.arange(size) + 0.5
    height = rng.uniform(0.15, 0.85) * size
    slope = rng.uniform(-0.4, 0.4)
    amplitude = rng.uniform(0.0, 0.08) * size
    frequency = rng.uniform(0.5, 3.0) * 2.0 * np.pi / size
    return height + slope * (x - size / 2) + amplitude * np.sin(frequency * x + rng.uniform(0, 6.3))


def _stuff(rng: np.random.Generator, size: int):
    """Stuff class index per pixel (bands between two wavy lines) and the 1-px void lines."""
    lower, upper = np.sort(np.stack([_boundary(rng, size), _boundary(rng, size)]), axis=0)
    if rng.random() < 0.3:
        upper = lower  # two stuff regions only
    y = np.arange(size)[:, None] + 0.5
    band = (y >= lower).astype(np.int64) + (y >= upper)
    void = (np.abs(y - lower) < 0.5) | (np.abs(y - upper) < 0.5)
    return rng.permutation(len(STUFF))[band], void


def _thing_mask(rng: np.random.Generator, hw, shape: str, size: float) -> np.ndarray:
    """A shape whose circumscribed circle has diameter ``size``, at a random place and angle."""
    cx, cy = rng.uniform(0, hw[1]), rng.uniform(0, hw[0])
    angle = rng.uniform(0, 2 * np.pi)
    if shape == "circle":
        return drawing.ellipse(hw, cx, cy, size / 2, size / 2)
    if shape == "square":
        return drawing.rectangle(hw, cx, cy, size / 2**1.5, size / 2**1.5, angle)
    return drawing.triangle(hw, cx, cy, size / 2, angle)


def render(rng: np.random.Generator, params: PanopticParams):
    """One image: ``(rgb uint8, segment-id map int32, [(segment id, category, mask), ...])``."""
    hw = (params.image_size, params.image_size)
    stuff_index, void = _stuff(rng, params.image_size)
    base = np.array([c["color"] for c in STUFF], dtype=np.float32)
    noise = rng.normal(0.0, 1.0, size=(*hw, 1)).astype(np.float32)
    image = base[stuff_index] + noise * STUFF_NOISE[stuff_index][..., None]

    num_things = int(rng.integers(1, params.max_things + 1))
    classes = rng.integers(0, len(THINGS), size=num_things)
    sizes = rng.uniform(params.min_thing_size, params.max_thing_size, size=num_things)
    masks = [_thing_mask(rng, hw, THINGS[c]["name"], s) for c, s in zip(classes, sizes)]
    things = drawing.visible_masks(masks, MIN_VISIBLE_AREA)

    covered = void.copy()
    for _, visible in things:
        covered |= visible
    segments = []
    for k, cat in enumerate(STUFF):
        mask = (stuff_index == k) & ~covered
        if mask.any():
            segments.append((cat["id"] * SEGMENT_ID_STRIDE, cat, mask))
    for number, (index, visible) in enumerate(things):
        cat = THINGS[classes[index]]
        colour = np.array(cat["color"]) + rng.uniform(-THING_JITTER, THING_JITTER, size=3)
        drawing.paint(image, visible, rng, colour, THING_NOISE)
        segments.append((cat["id"] * SEGMENT_ID_STRIDE + number + 1, cat, visible))

    pan_ids = np.zeros(hw, dtype=np.int32)
    for segment_id, _, mask in segments:
        pan_ids[mask] = segment_id
    return drawing.to_uint8(image), pan_ids, segments


def generate(params: PanopticParams, out_dir: os.PathLike) -> None:
    """Write the set described by ``params`` into ``out_dir``."""
    out = Path(out_dir)
    for sub in ("images", "panoptic", "semantic", "panoptic_stuff"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    full_labels = standard_label_map(standard_metadata(CATEGORIES))
    stuff_labels = separated_label_map(separated_metadata(CATEGORIES))
    images, pan_anns, inst_anns = [], [], []
    for index in tqdm(range(params.num_images), desc=f"{KIND} seed {params.seed}", leave=False):
        rng = np.random.default_rng([params.seed, index])
        image, pan_ids, segments = render(rng, params)
        image_id, stem = index + 1, f"{index + 1:06d}"
        write_jpg(image, out / "images" / f"{stem}.jpg")
        write_panoptic_png(pan_ids, out / "panoptic" / f"{stem}.png")
        infos = []
        for segment_id, cat, mask in segments:
            info = segment_record(segment_id, cat["id"], mask)
            infos.append(info)
            if cat["isthing"]:
                inst_anns.append(instance_record(len(inst_anns) + 1, image_id, cat["id"], mask))
        write_png(
            semantic_from_panoptic(pan_ids, infos, full_labels), out / "semantic" / f"{stem}.png"
        )
        write_png(
            semantic_from_panoptic(pan_ids, infos, stuff_labels),
            out / "panoptic_stuff" / f"{stem}.png",
        )
        h, w = pan_ids.shape
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": h, "width": w})
        pan_anns.append({"image_id": image_id, "file_name": f"{stem}.png", "segments_info": infos})
    write_json(
        {"images": images, "annotations": pan_anns, "categories": CATEGORIES}, out / "panoptic.json"
    )
    write_json(
        {"images": images, "annotations": inst_anns, "categories": THINGS}, out / "instances.json"
    )
    write_generator_info(KIND, params, out)


def paths(root: os.PathLike) -> dict:
    """The files and folders of a generated set under ``root``."""
    root = Path(root)
    return {
        "image_root": str(root / "images"),
        "panoptic_root": str(root / "panoptic"),
        "panoptic_json": str(root / "panoptic.json"),
        "json_file": str(root / "instances.json"),
        "sem_seg_root": str(root / "semantic"),
        "stuff_root": str(root / "panoptic_stuff"),
    }


def load(root: os.PathLike, metadata: dict, sem_seg_root: str) -> list:
    """Panoptic dicts of a generated set under ``metadata``'s convention, with
    ``sem_seg_file_name`` under ``sem_seg_root``; every referenced file must exist."""
    p, hint = paths(root), regenerate_hint(root)
    dicts = panoptic_dicts(
        read_json(p["panoptic_json"], hint),
        p["image_root"],
        p["panoptic_root"],
        metadata,
        sem_seg_root,
    )
    for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
        check_files((d[key] for d in dicts), hint)
    return dicts
