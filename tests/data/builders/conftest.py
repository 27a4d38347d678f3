"""A tiny fake COCO instances file (RLE masks with hand-known pixels)."""

import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
]
IMAGES = [  # (id, height, width)
    (1, 10, 20),
    (2, 10, 10),
    (3, 10, 10),
    (4, 640, 640),
    (5, 480, 640),
]


def rle_annotation(ann_id, image_id, category_id, height, width, rows, cols, iscrowd=0, bbox=None):
    """Annotation whose mask is the rectangle ``rows`` x ``cols`` (python slices)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[rows, cols] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    ys, xs = np.nonzero(mask)
    if bbox is None:
        bbox = [
            int(xs.min()),
            int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        ]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle,
        "area": int(mask.sum()),
        "bbox": bbox,
        "iscrowd": iscrowd,
    }


def fake_coco():
    """Image 1 (10x20): car 5x10, bicycle 2x3 on it, crowd car 2x10, person 5x4.
    Image 2 (10x10): person 3x1 (shape 6x2 on the 20x20 grid), dog. Image 3 (10x10): a
    crowd car row. Image 4 (640x640): persons of shapes 7x2, 2x2, 20x20 and a crowd person
    of shape 10x10. Image 5 (480x640): a 1x1-shape person."""
    s = slice
    a = rle_annotation
    annotations = [
        a(1, 1, 3, 10, 20, s(0, 5), s(0, 10)),
        a(2, 1, 2, 10, 20, s(2, 4), s(5, 8)),
        a(3, 1, 3, 10, 20, s(8, 10), s(10, 20), iscrowd=1),
        a(4, 1, 1, 10, 20, s(5, 10), s(0, 4)),
        a(5, 2, 1, 10, 10, s(0, 3), s(0, 1)),
        a(6, 2, 18, 10, 10, s(5, 8), s(5, 8)),
        a(7, 3, 3, 10, 10, s(0, 1), s(0, 10), iscrowd=1),
        a(8, 4, 1, 640, 640, s(64, 288), s(32, 96)),
        a(9, 4, 1, 640, 640, s(10, 50), s(10, 50)),
        a(10, 4, 1, 640, 640, s(0, 640), s(0, 640)),
        a(11, 4, 1, 640, 640, s(100, 400), s(100, 400), iscrowd=1),
        a(12, 5, 1, 480, 640, s(0, 24), s(0, 32)),
    ]
    images = [
        {"id": i, "height": h, "width": w, "file_name": f"{i:012d}.jpg"} for i, h, w in IMAGES
    ]
    return {
        "info": {},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }


@pytest.fixture
def coco_root(tmp_path):
    """Datasets root with coco/annotations/instances_train2017.json = fake_coco()."""
    path = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    os.makedirs(path.parent)
    path.write_text(json.dumps(fake_coco()))
    return str(tmp_path)
