"""detectron2 records of COCO panoptic JSONs (shared by the synthetic sets and the COCO
samples)."""
import os
from typing import List, Optional

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
