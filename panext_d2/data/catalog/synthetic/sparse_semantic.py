"""Synthetic sparse semantic set: mostly empty images, a few small foreground objects.

Exactly ``round(empty_share * num_images)`` images hold no foreground. Foreground classes:
1 "blob" (bright ellipse), 2 "streak" (thin dark bar); unlabelled faint blobs on the
textured background are distractors.

Folder layout (written by :func:`generate`)::

    images/NNNNNN.jpg     RGB images
    semantic/NNNNNN.png   labels: 0 background, 1..K foreground classes
    index.json            per image: file names, size, foreground_classes; the categories
    generator.json        the generator parameters and version
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import drawing
from ...json_io import read_json, write_json
from .cache import check_files, regenerate_hint, write_generator_info
from .formats import write_jpg, write_png

KIND = "synthetic_sparse"
CLASSES = ["background", "blob", "streak"]
COLORS = [[0, 0, 0], [250, 170, 30], [0, 120, 255]]
# the empty-image permutation uses its own random stream, apart from the per-image ones
_EMPTY_STREAM = 2**32


@dataclass(frozen=True)
class SparseParams:
    num_images: int = 400
    image_size: int = 128
    seed: int = 0
    empty_share: float = 0.75
    num_classes: int = 2
    max_objects: int = 3
    min_object_size: float = 3.0
    max_object_size: float = 16.0
    max_distractors: int = 3

    def __post_init__(self):
        if not 1 <= self.num_classes <= len(CLASSES) - 1:
            raise ValueError(
                f"num_classes must be in [1, {len(CLASSES) - 1}], got {self.num_classes}"
            )
        if not 0.0 <= self.empty_share <= 1.0:
            raise ValueError(f"empty_share must be in [0, 1], got {self.empty_share}")


def empty_images(params: SparseParams) -> np.ndarray:
    """Boolean per image: True for the ``round(empty_share * num_images)`` empty ones."""
    num_empty = int(round(params.empty_share * params.num_images))
    order = np.random.default_rng([params.seed, _EMPTY_STREAM]).permutation(params.num_images)
    return order < num_empty


def _object_mask(rng: np.random.Generator, hw, label: int, length: float) -> np.ndarray:
    cx, cy = rng.uniform(0, hw[1]), rng.uniform(0, hw[0])
    angle = rng.uniform(0, np.pi)
    if label == 1:
        return drawing.ellipse(hw, cx, cy, length / 2, length / 2 * rng.uniform(0.5, 1.0), angle)
    return drawing.rectangle(hw, cx, cy, length / 2, max(length / 8, 0.75), angle)


def render(rng: np.random.Generator, params: SparseParams, empty: bool):
    """One image: ``(rgb uint8, uint8 label map)``."""
    hw = (params.image_size, params.image_size)
    level = rng.uniform(60, 160)
    image = drawing.textured(rng, hw, (level, level, level), 10.0)
    for _ in range(int(rng.integers(0, params.max_distractors + 1))):
        cx, cy, r = rng.uniform(0, hw[1]), rng.uniform(0, hw[0]), rng.uniform(4, 20)
        drawing.paint(
            image, drawing.ellipse(hw, cx, cy, r, r), rng, level + rng.uniform(-25, 25, 3), 10.0
        )
    labels = np.zeros(hw, dtype=np.uint8)
    for _ in range(0 if empty else int(rng.integers(1, params.max_objects + 1))):
        label = int(rng.integers(1, params.num_classes + 1))
        length = rng.uniform(params.min_object_size, params.max_object_size)
        mask = _object_mask(rng, hw, label, length)
        colour = rng.uniform(200, 255, 3) if label == 1 else rng.uniform(0, 50, 3)
        drawing.paint(image, mask, rng, colour, 8.0)
        labels[mask] = label
    return drawing.to_uint8(image), labels


def generate(params: SparseParams, out_dir: os.PathLike) -> None:
    """Write the set described by ``params`` into ``out_dir``."""
    out = Path(out_dir)
    for sub in ("images", "semantic"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    records = []
    empty = empty_images(params)
    for index in tqdm(range(params.num_images), desc=f"{KIND} seed {params.seed}", leave=False):
        image, labels = render(np.random.default_rng([params.seed, index]), params, empty[index])
        stem = f"{index + 1:06d}"
        write_jpg(image, out / "images" / f"{stem}.jpg")
        write_png(labels, out / "semantic" / f"{stem}.png")
        records.append(
            {
                "image_id": index + 1,
                "file_name": f"{stem}.jpg",
                "sem_seg_file_name": f"{stem}.png",
                "height": labels.shape[0],
                "width": labels.shape[1],
                "foreground_classes": [int(c) for c in np.unique(labels) if c != 0],
            }
        )
    classes = CLASSES[: params.num_classes + 1]
    write_json({"images": records, "classes": classes}, out / "index.json")
    write_generator_info(KIND, params, out)


def paths(root: os.PathLike) -> dict:
    """The files and folders of a generated set under ``root``."""
    root = Path(root)
    return {
        "image_root": str(root / "images"),
        "sem_seg_root": str(root / "semantic"),
        "index": str(root / "index.json"),
    }


def load(root: os.PathLike) -> list:
    """detectron2 semantic dicts (file_name, sem_seg_file_name, height, width, image_id,
    foreground_classes); every referenced file must exist."""
    p, hint = paths(root), regenerate_hint(root)
    dicts = [
        {
            **record,
            "file_name": os.path.join(p["image_root"], record["file_name"]),
            "sem_seg_file_name": os.path.join(p["sem_seg_root"], record["sem_seg_file_name"]),
        }
        for record in read_json(p["index"], hint)["images"]
    ]
    for key in ("file_name", "sem_seg_file_name"):
        check_files((d[key] for d in dicts), hint)
    return dicts
