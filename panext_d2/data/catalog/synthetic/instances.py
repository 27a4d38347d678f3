"""Synthetic person set: person-like figures (head, torso, arms, legs) of many sizes and
aspect ratios over textured backgrounds with unlabelled distractor shapes.

Folder layout (written by :func:`generate`)::

    images/NNNNNN.jpg    RGB images (some without any person)
    instances.json       COCO instance JSON, category 1 "person", RLE of the visible masks
    generator.json       the generator parameters and version
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detectron2.data.datasets import load_coco_json

from . import drawing
from ...json_io import read_json, write_json
from .cache import check_files, regenerate_hint, write_generator_info
from .formats import instance_record, write_jpg

KIND = "synthetic_instances"
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person", "color": [220, 20, 60]}]
MIN_VISIBLE_AREA = 6


@dataclass(frozen=True)
class InstancesParams:
    num_images: int = 400
    image_size: int = 256
    seed: int = 0
    empty_share: float = 0.15
    max_persons: int = 5
    min_height: float = 8.0
    max_height_share: float = 0.95
    min_aspect: float = 0.25  # width / height of the figure's box
    max_aspect: float = 0.7
    max_distractors: int = 4


def _person_mask(hw, x0: float, y0: float, w: float, h: float, rng: np.random.Generator):
    """A figure in the box (x0, y0, w, h): head ellipse, torso superellipse, arms, legs."""
    slices, yy, xx = drawing.window(hw, x0 + w / 2, y0 + h / 2, w / 2 + 1, h / 2 + 1)
    u, v = (xx - x0) / w, (yy - y0) / h  # box-normalised coordinates in [0, 1]
    head = ((u - 0.5) / 0.17) ** 2 + ((v - 0.085) / 0.085) ** 2 <= 1.0
    torso = ((u - 0.5) / 0.27) ** 4 + ((v - 0.36) / 0.2) ** 4 <= 1.0
    arm_reach = rng.uniform(0.45, 0.5)
    arms = (np.abs(u - 0.5) <= arm_reach) & (np.abs(u - 0.5) >= 0.25) & (v >= 0.18) & (v <= 0.5)
    spread = rng.uniform(0.08, 0.2)
    legs = (v >= 0.52) & (v <= 1.0) & (np.abs(np.abs(u - 0.5) - spread * v) <= 0.1)
    body = head | torso | arms | legs
    mask = np.zeros(hw, dtype=bool)
    mask[slices] = body
    return mask, (slices, head, legs)


def _background(rng: np.random.Generator, params: InstancesParams) -> np.ndarray:
    """A vertical colour gradient with pixel noise and a few random ellipses / rectangles."""
    size = params.image_size
    hw = (size, size)
    top, bottom = rng.uniform(30, 225, size=(2, 3))
    t = (np.arange(size, dtype=np.float32) / (size - 1))[:, None, None]
    image = (1 - t) * top + t * bottom + rng.normal(0, 8.0, size=(*hw, 1))
    image = np.broadcast_to(image, (*hw, 3)).astype(np.float32)
    for _ in range(int(rng.integers(0, params.max_distractors + 1))):
        cx, cy = rng.uniform(0, size, size=2)
        rx, ry = rng.uniform(4, size / 4, size=2)
        angle = rng.uniform(0, np.pi)
        shape = drawing.ellipse if rng.random() < 0.5 else drawing.rectangle
        drawing.paint(image, shape(hw, cx, cy, rx, ry, angle), rng, rng.uniform(0, 255, 3), 6.0)
    return image


def render(rng: np.random.Generator, params: InstancesParams):
    """One image: ``(rgb uint8, [visible person masks])``."""
    size = params.image_size
    hw = (size, size)
    image = _background(rng, params)
    empty = rng.random() < params.empty_share
    count = 0 if empty else int(rng.integers(1, params.max_persons + 1))
    figures = []
    for _ in range(count):
        # log-uniform heights cover COCO's small / medium / large sizes evenly
        h = float(
            np.exp(rng.uniform(np.log(params.min_height), np.log(params.max_height_share * size)))
        )
        w = h * rng.uniform(params.min_aspect, params.max_aspect)
        x0, y0 = rng.uniform(-w / 4, size - 3 * w / 4), rng.uniform(-h / 8, size - 7 * h / 8)
        figures.append(_person_mask(hw, x0, y0, w, h, rng))
    kept = drawing.visible_masks([mask for mask, _ in figures], MIN_VISIBLE_AREA)
    for index, visible in kept:
        mask, (slices, head, legs) = figures[index]
        drawing.paint(image, mask, rng, rng.uniform(0, 255, 3), 5.0)  # clothes
        parts = np.zeros(hw, dtype=bool)
        parts[slices] = head
        drawing.paint(image, parts & mask, rng, rng.uniform([150, 90, 60], [255, 200, 170]), 4.0)
        parts[slices] = legs
        drawing.paint(image, parts & mask, rng, rng.uniform(0, 160, 3), 5.0)
    return drawing.to_uint8(image), [visible for _, visible in kept]


def generate(params: InstancesParams, out_dir: os.PathLike) -> None:
    """Write the set described by ``params`` into ``out_dir``."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in tqdm(range(params.num_images), desc=f"{KIND} seed {params.seed}", leave=False):
        image, masks = render(np.random.default_rng([params.seed, index]), params)
        image_id, file_name = index + 1, f"{index + 1:06d}.jpg"
        write_jpg(image, out / "images" / file_name)
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": image.shape[0],
                "width": image.shape[1],
            }
        )
        for mask in masks:
            annotations.append(instance_record(len(annotations) + 1, image_id, 1, mask))
    write_json(
        {"images": images, "annotations": annotations, "categories": CATEGORIES},
        out / "instances.json",
    )
    write_generator_info(KIND, params, out)


def paths(root: os.PathLike) -> dict:
    """The files and folders of a generated set under ``root``."""
    return {
        "image_root": str(Path(root) / "images"),
        "json_file": str(Path(root) / "instances.json"),
    }


def load(root: os.PathLike, dataset_name: str) -> list:
    """detectron2 instance dicts (``load_coco_json``); every referenced file must exist."""
    p, hint = paths(root), regenerate_hint(root)
    read_json(p["json_file"], hint)  # clear errors for a missing or corrupt JSON
    dicts = load_coco_json(p["json_file"], p["image_root"], dataset_name)
    check_files((d["file_name"] for d in dicts), hint)
    return dicts
