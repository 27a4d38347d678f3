"""Cityscapes person crops (Kolhatkar (2020) §4.3).

Every person instance of ``cityscapes/gtFine/{split}/*/*_gtFine_instanceIds.png`` (label 24,
instance ids 24000 + k; person groups, stored as plain 24, are not instances) gives one crop
of ``leftImg8bit``: its bounding box, kept centred, grows in height or width to the aspect
h / w = 5 / 3 (the thesis' "approximately 1.67", that of 320x192 and 160x96), then by
``background`` percent of its height (width) on the top and bottom (left and right) sides;
the crop is resized to each output size without changing its aspect. The thesis names no
selection rule, so every instance is kept; parts of a crop beyond the image border are
zero-padded (image and mask), which keeps the person centred. Only the centred person is
labelled: mask 1 on its pixels, 0 elsewhere.

Output per variant ``{H}x{W}_bg{background}`` under ``cityscapes_person_crops/``:
``{split}/images/<stem>_<instance id>.png``, ``{split}/masks/<same>.png`` and ``{split}.json``
records (``file_name`` relative to ``images/``, ``sem_seg_file_name`` relative to
``masks/``, ``height``, ``width``, ``image_id``, ``source_box`` (the crop box XYXY in the
Cityscapes image) and ``foreground_classes``).
"""
import glob
import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..json_io import write_json
from .common import progress

SPLITS = ("train", "val")
SIZES = ((320, 192), (160, 96))
BACKGROUNDS = (0, 5, 10)
HEIGHT_TO_WIDTH = 5 / 3
PERSON_LABEL_ID = 24
CLASSES = ("background", "person")


def variant_name(size, background):
    return f"{size[0]}x{size[1]}_bg{background}"


def variant_dir(root, size, background):
    return os.path.join(root, "cityscapes_person_crops", variant_name(size, background))


def records_json(root, size, background, split):
    return os.path.join(variant_dir(root, size, background), f"{split}.json")


def person_instances(instance_ids):
    """Person instance ids in an instanceIds map and their boxes (N, 4) XYXY, end-exclusive."""
    ys, xs = np.nonzero(instance_ids // 1000 == PERSON_LABEL_ID)
    ids, inverse = np.unique(instance_ids[ys, xs], return_inverse=True)
    lo = np.full((len(ids), 2), np.iinfo(np.int64).max)
    hi = np.full((len(ids), 2), -1)
    points = np.stack([xs, ys], axis=1)
    np.minimum.at(lo, inverse, points)
    np.maximum.at(hi, inverse, points + 1)
    return ids, np.concatenate([lo, hi], axis=1)


def crop_boxes(boxes, aspect=HEIGHT_TO_WIDTH, background=0):
    """Integer crop boxes (N, 4) XYXY centred on ``boxes``, of aspect h / w ≈ ``aspect``.

    The shorter side grows to the aspect, then each side grows by ``background`` percent
    of the box height (top, bottom) or width (left, right).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    height = np.maximum(boxes[:, 3] - boxes[:, 1], aspect * (boxes[:, 2] - boxes[:, 0]))
    size = np.stack([height / aspect, height], axis=1) * (1 + 2 * background / 100)
    size = np.maximum(np.round(size), 1)
    start = np.round(centre - size / 2)
    return np.concatenate([start, start + size], axis=1).astype(np.int64)


def crop_padded(array, box):
    """``array[y0:y1, x0:x1]`` for an integer XYXY box, zero where it leaves the array."""
    x0, y0, x1, y1 = (int(v) for v in box)
    out = np.zeros((y1 - y0, x1 - x0) + array.shape[2:], dtype=array.dtype)
    h, w = array.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


def resize(array, size, nearest=False):
    """Resize to ``size`` = (H, W): nearest for masks, area when shrinking, else bilinear."""
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif array.shape[0] > size[0]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(array, (size[1], size[0]), interpolation=interpolation)


@dataclass
class CropStats:
    split: str
    images: int = 0
    crops: int = 0


def _source_pairs(root, split):
    """[(stem, leftImg8bit path, instanceIds path)] of a Cityscapes split, sorted."""
    pattern = os.path.join(root, "cityscapes", "gtFine", split, "*", "*_gtFine_instanceIds.png")
    pairs = []
    for path in sorted(glob.glob(pattern)):
        stem = os.path.basename(path)[: -len("_gtFine_instanceIds.png")]
        city = os.path.basename(os.path.dirname(path))
        image = os.path.join(
            root, "cityscapes", "leftImg8bit", split, city, f"{stem}_leftImg8bit.png")
        pairs.append((stem, image, path))
    return pairs


def build_split(root, split, backgrounds=BACKGROUNDS):
    """Write every variant's crops of one split; return its CropStats."""
    pairs = _source_pairs(root, split)
    if not pairs:
        gt_dir = os.path.join(root, "cityscapes", "gtFine", split)
        raise FileNotFoundError(f"no <city>/*_gtFine_instanceIds.png under {gt_dir}")
    variants = [(size, bg) for bg in backgrounds for size in SIZES]
    records = {v: [] for v in variants}
    for size, bg in variants:
        for sub in ("images", "masks"):
            os.makedirs(os.path.join(variant_dir(root, size, bg), split, sub), exist_ok=True)
    stats = CropStats(split)
    for stem, image_path, ids_path in progress(pairs, desc=f"cityscapes crops {split}"):
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(image_path)
        instance_ids = cv2.imread(ids_path, cv2.IMREAD_UNCHANGED)
        ids, boxes = person_instances(instance_ids)
        stats.images += 1
        stats.crops += len(ids)
        for bg in backgrounds:
            for instance_id, box in zip(ids, crop_boxes(boxes, HEIGHT_TO_WIDTH, bg)):
                image_crop = crop_padded(image, box)
                mask_crop = (crop_padded(instance_ids, box) == instance_id).astype(np.uint8)
                name = f"{stem}_{instance_id}.png"
                for size in SIZES:
                    out = os.path.join(variant_dir(root, size, bg), split)
                    mask = resize(mask_crop, size, nearest=True)
                    cv2.imwrite(os.path.join(out, "images", name), resize(image_crop, size))
                    cv2.imwrite(os.path.join(out, "masks", name), mask)
                    records[size, bg].append({
                        "file_name": name,
                        "sem_seg_file_name": name,
                        "height": size[0],
                        "width": size[1],
                        "image_id": f"{stem}_{instance_id}",
                        "source_box": box.tolist(),
                        "foreground_classes": [1] if mask.any() else [],
                    })
    for (size, bg), variant_records in records.items():
        write_json(variant_records, records_json(root, size, bg, split))
    return stats


def build_cityscapes_person_crops(root, splits=SPLITS, backgrounds=BACKGROUNDS):
    """Build every crop variant under ``root/cityscapes_person_crops``; return [CropStats]."""
    return [build_split(root, split, backgrounds) for split in splits]
