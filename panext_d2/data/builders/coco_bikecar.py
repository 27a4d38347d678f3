"""COCO BikeCar (Andrade (2021) §7.1.2, Table 7.2): every COCO image, foreground bicycle and car.

Per split (COCO train2017 / val2017) the builder writes one semantic PNG per image,
``coco_bikecar/sem_seg/{split}2017/<image id:012d>.png`` (0 background, 1 bicycle, 2 car),
and ``coco_bikecar/{split}2017.json``: one record per image with ``file_name`` (relative to
``coco/{split}2017``), ``sem_seg_file_name`` (relative to the sem_seg folder), ``height``,
``width``, ``image_id`` and ``foreground_classes``.

Masks are painted from the largest instance to the smallest, so a small object on top of a
large one stays visible. Crowd regions take their class by default (``crowd="class"``):
their pixels are bicycles or cars, and an image whose only car is a crowd region is then
counted as a car image, not as an empty one. ``crowd="ignore"`` labels them 255 instead.
"""
import os

import cv2
import numpy as np
from pycocotools.coco import COCO

from ..json_io import write_json
from .common import SemSegStats, progress

SPLITS = ("train", "val")
CLASSES = ("background", "bicycle", "car")
IGNORE_LABEL = 255


def coco_instances_json(root, split):
    return os.path.join(root, "coco", "annotations", f"instances_{split}2017.json")


def records_json(root, split):
    return os.path.join(root, "coco_bikecar", f"{split}2017.json")


def sem_seg_dir(root, split):
    return os.path.join(root, "coco_bikecar", "sem_seg", f"{split}2017")


def semantic_mask(coco, annotations, height, width, labels, crowd="class"):
    """(height, width) uint8 label map of ``annotations``.

    ``labels`` maps a COCO category id to its label; instances are painted by decreasing
    area; crowd regions get their label (``crowd="class"``) or 255 (``crowd="ignore"``).
    """
    if crowd not in ("class", "ignore"):
        raise ValueError(f"crowd must be 'class' or 'ignore', got {crowd!r}")
    if not annotations:
        return np.zeros((height, width), dtype=np.uint8)
    annotations = sorted(annotations, key=lambda a: -a["area"])
    masks = np.stack([coco.annToMask(a) for a in annotations], axis=-1).astype(bool)
    values = np.array(
        [IGNORE_LABEL if a["iscrowd"] and crowd == "ignore" else labels[a["category_id"]]
         for a in annotations],
        dtype=np.uint8,
    )
    last = masks.shape[-1] - 1 - np.argmax(masks[..., ::-1], axis=-1)  # last painted wins
    return np.where(masks.any(axis=-1), values[last], 0).astype(np.uint8)


def build_split(coco, image_dir_out, crowd="class"):
    """Write the label maps of every image of ``coco``; return (records, SemSegStats)."""
    cat_ids = coco.getCatIds(catNms=list(CLASSES[1:]))
    labels = {c["id"]: CLASSES.index(c["name"]) for c in coco.loadCats(cat_ids)}
    os.makedirs(image_dir_out, exist_ok=True)
    stats = SemSegStats(CLASSES)
    records = []
    for image_id in progress(sorted(coco.getImgIds()), desc="coco_bikecar"):
        info = coco.imgs[image_id]
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=cat_ids))
        label = semantic_mask(coco, annotations, info["height"], info["width"], labels, crowd)
        mask_name = f"{image_id:012d}.png"
        cv2.imwrite(os.path.join(image_dir_out, mask_name), label)
        records.append({
            "file_name": info["file_name"],
            "sem_seg_file_name": mask_name,
            "height": info["height"],
            "width": info["width"],
            "image_id": image_id,
            "foreground_classes": stats.add(label),
        })
    return records, stats


def build_coco_bikecar(root, splits=SPLITS, crowd="class"):
    """Build COCO BikeCar under ``root`` from ``coco/annotations``; return {split: stats}."""
    stats = {}
    for split in splits:
        coco = COCO(coco_instances_json(root, split))
        records, stats[split] = build_split(coco, sem_seg_dir(root, split), crowd)
        write_json(records, records_json(root, split))
    return stats
