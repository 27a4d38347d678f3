"""detectron2's two COCO panoptic conventions, for any COCO-style category list: the one
home of the id mappings that datasets, mappers, models and evaluators share.

* "standard" (``coco_2017_*_panoptic``, Mask2Former's ``_with_sem_seg``): every category is
  listed in both ``thing_classes`` and ``stuff_classes``; contiguous id = position among all
  categories; semantic PNG labels = those ids.
* "separated" (Panoptic FPN, ``coco_2017_*_panoptic_separated``): things get contiguous ids
  0..T-1, stuff 1..S with 0 = "things" in the stuff-only semantic PNG.

Both mirror ``detectron2/data/datasets/builtin_meta.py``; the tests check them against it.
"""
from typing import Dict, Iterable, List, Sequence

import numpy as np
from detectron2.data import MetadataCatalog

IGNORE_LABEL = 255  # detectron2's sem-seg ignore value, our datasets' ignore_label

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


def panoptic_class_ids(metadata):
    """Sorted contiguous ids of the thing and of the stuff classes of a panoptic dataset, or
    None when its metadata has no id maps.

    Handles detectron2's conventions: "standard" (stuff_dataset_id_to_contiguous_id covers
    every class, things included, for SemSegEvaluator), disjoint thing / stuff maps, and
    "separated" (dataset id 0 is the extra "things" class of the semantic maps).
    """
    if not hasattr(metadata, "thing_dataset_id_to_contiguous_id"):
        return None
    thing_map = metadata.thing_dataset_id_to_contiguous_id
    stuff_map = metadata.get("stuff_dataset_id_to_contiguous_id", {})
    things = sorted(thing_map.values())
    stuff = sorted(v for k, v in stuff_map.items() if k not in thing_map and k != 0)
    return things, stuff


def class_index_maps(metadata, num_things: int = None, num_stuff: int = None):
    """{contiguous id: thing index} and {contiguous id: stuff index}: the head channel of
    each class is its rank among the dataset's thing (stuff) ids; without id maps, things
    are 0..num_things-1 and stuff follows."""
    ids = panoptic_class_ids(metadata)
    if ids is None:
        ids = list(range(num_things)), list(range(num_things, num_things + num_stuff))
    things, stuff = ids
    return {c: i for i, c in enumerate(things)}, {c: i for i, c in enumerate(stuff)}


def is_standard_convention(meta) -> bool:
    """Whether ``meta`` follows the standard convention (every class in ``stuff_classes``)."""
    thing_map = meta.get("thing_dataset_id_to_contiguous_id", {})
    stuff_map = meta.get("stuff_dataset_id_to_contiguous_id", {})
    return bool(thing_map) and len(thing_map) + len(stuff_map) == len(meta.get("stuff_classes", []))


def class_ids_from_metadata(dataset_names: Sequence[str], num_things: int, num_stuff: int):
    """Contiguous dataset ids of the thing and stuff head channels, from the first dataset
    with id maps (see :func:`panoptic_class_ids`), or 0..C_th-1 then C_th.. without one."""
    for name in dataset_names:
        ids = panoptic_class_ids(MetadataCatalog.get(name))
        if ids is None:
            continue
        if (len(ids[0]), len(ids[1])) != (num_things, num_stuff):
            raise ValueError(
                f"dataset {name!r} has {len(ids[0])} thing / {len(ids[1])} stuff classes, but "
                f"MODEL.PANEXT.NUM_THING/STUFF_CLASSES say {num_things} / {num_stuff}"
            )
        return ids
    return list(range(num_things)), list(range(num_things, num_things + num_stuff))
