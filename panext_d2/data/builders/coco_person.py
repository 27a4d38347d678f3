"""COCO person subset and its ISB-shape subset (Kolhatkar (2020) §5.1.2, §5.2.1, Table 5.1).

* ``coco_person``: the images with at least one person annotation (crowd included) and
  only their person annotations.
* ``coco_isb_shapes``: the images among those with at least one person box whose
  encompassing box on the 20x20 grid has one of the ISB shapes; written twice with the same
  images, once with all their person annotations (Table 5.2) and once with the matching
  annotations only (``instances_matched_*``, Table 5.3).

Outputs reference the original ``coco/{split}2017`` images.
"""
import os
from dataclasses import dataclass

import numpy as np

from .cells import ISB_SHAPES, cell_shapes, match_shapes
from ..json_io import read_json, write_json
from .common import format_table

SPLITS = ("train", "val")


def coco_instances_json(root, split):
    return os.path.join(root, "coco", "annotations", f"instances_{split}2017.json")


def person_json(root, split):
    return os.path.join(root, "coco_person", "annotations", f"instances_{split}2017.json")


def isb_json(root, split, matched=False):
    name = f"instances_matched_{split}2017.json" if matched else f"instances_{split}2017.json"
    return os.path.join(root, "coco_isb_shapes", "annotations", name)


def _with(coco, images, annotations):
    return {**coco, "images": images, "annotations": annotations}


def person_subset(coco):
    """COCO dict reduced to category person and the images that contain one."""
    categories = [c for c in coco["categories"] if c["name"] == "person"]
    person_id = categories[0]["id"]
    annotations = [a for a in coco["annotations"] if a["category_id"] == person_id]
    keep = {a["image_id"] for a in annotations}
    images = [im for im in coco["images"] if im["id"] in keep]
    return {**_with(coco, images, annotations), "categories": categories}


def annotation_shapes(coco, grid_size=(20, 20)):
    """(N, 2) cell shapes (h, w) of ``coco["annotations"]`` on ``grid_size``."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    annotations = coco["annotations"]
    xywh = np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    hw = np.array([sizes[a["image_id"]] for a in annotations], dtype=np.float64).reshape(-1, 2)
    return cell_shapes(boxes, hw, grid_size)


def isb_subsets(person, shapes=ISB_SHAPES, grid_size=(20, 20)):
    """Split a person subset by ISB shape.

    Returns ``(all_annotations, matched_annotations, counts)``: two COCO dicts over the
    images having at least one annotation of a shape in ``shapes``, and the number of
    annotations of each shape followed by the number of the others ("Other" in Table 5.1).
    """
    annotations = person["annotations"]
    match = match_shapes(annotation_shapes(person, grid_size), shapes)
    matched = match.any(axis=1)
    keep = {a["image_id"] for a, m in zip(annotations, matched) if m}
    images = [im for im in person["images"] if im["id"] in keep]
    all_annotations = [a for a in annotations if a["image_id"] in keep]
    matched_annotations = [a for a, m in zip(annotations, matched) if m]
    counts = np.append(match.sum(axis=0), np.count_nonzero(~matched))
    return (
        _with(person, images, all_annotations),
        _with(person, images, matched_annotations),
        counts,
    )


@dataclass
class CocoPersonStats:
    split: str
    person_images: int
    person_annotations: int
    isb_images: int
    isb_matched_annotations: int
    shape_counts: np.ndarray  # per ISB shape, then "Other"


def build_coco_person(root, splits=SPLITS, shapes=ISB_SHAPES, grid_size=(20, 20)):
    """Write ``coco_person`` and ``coco_isb_shapes`` under ``root``; return per-split stats."""
    stats = []
    for split in splits:
        person = person_subset(read_json(coco_instances_json(root, split)))
        all_annotations, matched_annotations, counts = isb_subsets(person, shapes, grid_size)
        write_json(person, person_json(root, split))
        write_json(all_annotations, isb_json(root, split))
        write_json(matched_annotations, isb_json(root, split, matched=True))
        stats.append(
            CocoPersonStats(
                split,
                len(person["images"]),
                len(person["annotations"]),
                len(all_annotations["images"]),
                len(matched_annotations["annotations"]),
                counts,
            )
        )
    return stats


def format_coco_person(stats, shapes=ISB_SHAPES):
    """Image counts per subset and the Table 5.1-style shape distribution."""
    counts = format_table(
        ("split", "coco_person images", "person annotations", "coco_isb_shapes images",
         "matched annotations"),
        [(s.split, s.person_images, s.person_annotations, s.isb_images,
          s.isb_matched_annotations) for s in stats],
    )
    header = ("", *(f"{h}x{w}" for h, w in shapes), "Other")
    table = format_table(header, [(s.split.capitalize(), *s.shape_counts) for s in stats])
    return f"{counts}\n\nperson boxes by encompassing shape (h x w) on a 20x20 map:\n{table}"
