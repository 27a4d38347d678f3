"""detectron2's two COCO panoptic conventions, for any COCO-style category list.

* "standard" (``coco_2017_*_panoptic``, Mask2Former's ``_with_sem_seg``): every category is
  listed in both ``thing_classes`` and ``stuff_classes``; contiguous id = position among all
  categories; semantic PNG labels = those ids.
* "separated" (Panoptic FPN, ``coco_2017_*_panoptic_separated``): things get contiguous ids
  0..T-1, stuff 1..S with 0 = "things" in the stuff-only semantic PNG.

Both mirror ``detectron2/data/datasets/builtin_meta.py``; the tests check them against it.
"""

import os
from typing import Dict, Iterable, List, Optional

import numpy as np

from .formats import IGNORE_LABEL

# the colour detectron2's builtin separated metadata gives the merged "things" stuff class
THINGS_STUFF_COLOR = [82, 18, 128]


def standard_metadata(categories: List[dict]) -> dict:
    """Metadata of the standard convention, as detectron2's "coco_panoptic_standard"."""
    names = [c["name"] for c in categories]
    colors = [list(c["color"]) for c in categories]
    return {
        "thing_classes": names,
        "thing_colors": colors,
        "stuff_classes": names,
        "stuff_colors": colors,
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if not c["isthing"]
        },
    }


def separated_metadata(categories: List[dict]) -> dict:
    """Metadata of the Panoptic FPN convention, as detectron2's "coco_panoptic_separated"."""
    things = [c for c in categories if c["isthing"]]
    stuff = [c for c in categories if not c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [list(c["color"]) for c in things],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
        "stuff_classes": ["things"] + [c["name"] for c in stuff],
        "stuff_colors": [THINGS_STUFF_COLOR] + [list(c["color"]) for c in stuff],
        "stuff_dataset_id_to_contiguous_id": {
            0: 0,
            **{c["id"]: i + 1 for i, c in enumerate(stuff)},
        },
    }


def standard_label_map(metadata: dict) -> Dict[int, int]:
    """Semantic PNG labels of the standard convention: dataset id -> contiguous id."""
    return {
        **metadata["thing_dataset_id_to_contiguous_id"],
        **metadata["stuff_dataset_id_to_contiguous_id"],
    }


def separated_label_map(metadata: dict) -> Dict[int, int]:
    """Semantic PNG labels of the Panoptic FPN convention: things -> 0, stuff -> 1..S."""
    return {
        **{cat_id: 0 for cat_id in metadata["thing_dataset_id_to_contiguous_id"]},
        **metadata["stuff_dataset_id_to_contiguous_id"],
    }


def semantic_from_panoptic(
    pan_ids: np.ndarray, segments: Iterable[dict], label_of_category: Dict[int, int]
) -> np.ndarray:
    """uint8 label map: each segment's pixels get ``label_of_category[category_id]``;
    void pixels and segments whose category is not in the mapping get IGNORE_LABEL."""
    labels = np.full(pan_ids.shape, IGNORE_LABEL, dtype=np.uint8)
    for seg in segments:
        label = label_of_category.get(seg["category_id"])
        if label is not None:
            labels[pan_ids == seg["id"]] = label
    return labels


def panoptic_dicts(
    panoptic_json: dict,
    image_root: str,
    panoptic_root: str,
    metadata: dict,
    sem_seg_root: Optional[str] = None,
) -> List[dict]:
    """detectron2 dicts of a COCO panoptic JSON, as ``load_coco_panoptic_json`` makes them
    (segments_info with contiguous ``category_id`` and ``isthing`` under ``metadata``'s
    mappings), plus height, width and, given ``sem_seg_root``, ``sem_seg_file_name``
    (``<sem_seg_root>/<panoptic PNG name>``)."""
    things = metadata["thing_dataset_id_to_contiguous_id"]
    stuff = metadata["stuff_dataset_id_to_contiguous_id"]
    images = {img["id"]: img for img in panoptic_json["images"]}
    dicts = []
    for ann in panoptic_json["annotations"]:
        image = images[ann["image_id"]]
        segments = [
            {
                **seg,
                "category_id": (
                    things[seg["category_id"]]
                    if seg["category_id"] in things
                    else stuff[seg["category_id"]]
                ),
                "isthing": seg["category_id"] in things,
            }
            for seg in ann["segments_info"]
        ]
        record = {
            "file_name": os.path.join(image_root, image["file_name"]),
            "image_id": int(ann["image_id"]),
            "height": int(image["height"]),
            "width": int(image["width"]),
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "segments_info": segments,
        }
        if sem_seg_root is not None:
            record["sem_seg_file_name"] = os.path.join(sem_seg_root, ann["file_name"])
        dicts.append(record)
    return dicts
