"""Writers and converters for the COCO panoptic / instance and semantic PNG formats."""

from typing import List

import numpy as np
import pycocotools.mask as mask_util
from panopticapi.utils import id2rgb, rgb2id
from PIL import Image


def bbox_xywh(mask: np.ndarray) -> List[int]:
    """COCO box ``[x, y, w, h]`` of the pixels of ``mask`` (w = x_max - x_min + 1)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a binary mask, with ``counts`` as str (JSON-serialisable)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def segment_record(segment_id: int, category_id: int, mask: np.ndarray) -> dict:
    """A COCO panoptic ``segments_info`` entry (not crowd)."""
    return {
        "id": int(segment_id),
        "category_id": int(category_id),
        "iscrowd": 0,
        "bbox": bbox_xywh(mask),
        "area": int(mask.sum()),
    }


def instance_record(ann_id: int, image_id: int, category_id: int, mask: np.ndarray) -> dict:
    """A COCO instance annotation with the RLE of ``mask`` (not crowd)."""
    return {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": int(category_id),
        "iscrowd": 0,
        "bbox": bbox_xywh(mask),
        "area": int(mask.sum()),
        "segmentation": encode_rle(mask),
    }


def read_panoptic_png(path) -> np.ndarray:
    """Segment-id map (int64) of a COCO panoptic PNG."""
    with Image.open(path) as img:
        return rgb2id(np.asarray(img.convert("RGB"))).astype(np.int64)


def write_panoptic_png(pan_ids: np.ndarray, path) -> None:
    Image.fromarray(id2rgb(pan_ids)).save(path)


def write_png(labels: np.ndarray, path) -> None:
    Image.fromarray(labels).save(path)


def write_jpg(image: np.ndarray, path) -> None:
    Image.fromarray(image).save(path, quality=95)
