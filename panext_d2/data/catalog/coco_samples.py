"""The real COCO val2017 panoptic samples (two images) under detectron2's COCO conventions.

Root: ``$PANEXT_COCO_SAMPLES``, default the copy vendored in the repository,
``tests/data/coco_panoptic_samples`` (images/, panoptic/, panoptic_examples.json,
instances_detection_format.json; origin and licences in its README). The root is
read-only: the derived files (semantic PNGs of both conventions and a things-only instance
JSON, as COCO's instances_val2017.json) are generated into the cache on first load.

Registered names: ``coco_panoptic_samples`` (standard), ``coco_panoptic_samples_separated``
(Panoptic FPN) and ``coco_samples_instances`` (COCO instances, 80 thing classes).
"""

import os
from functools import partial
from pathlib import Path
from typing import Optional

from detectron2.data.datasets import load_coco_json
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

from ..json_io import read_json, write_json
from .synthetic.cache import check_files, dataset_dir, ensure_generated
from ...utils.panoptic_conventions import (
    IGNORE_LABEL,
    semantic_from_panoptic,
    separated_label_map,
    standard_label_map,
)
from .panoptic_records import panoptic_dicts
from .synthetic.formats import read_panoptic_png, write_png
from .synthetic.register import register_dataset

SAMPLES_ENV = "PANEXT_COCO_SAMPLES"
KIND = "coco_panoptic_samples"
VENDORED_SAMPLES = Path(__file__).resolve().parents[3] / "tests/data/coco_panoptic_samples"

STANDARD_META = _get_builtin_metadata("coco_panoptic_standard")
SEPARATED_META = _get_builtin_metadata("coco_panoptic_separated")
INSTANCES_META = _get_builtin_metadata("coco")


def samples_root() -> Path:
    """``$PANEXT_COCO_SAMPLES``, or the samples vendored in the repository's tests."""
    return Path(os.environ.get(SAMPLES_ENV) or VENDORED_SAMPLES)


def _source_paths(root: Path) -> dict:
    return {
        "image_root": str(root / "images"),
        "panoptic_root": str(root / "panoptic"),
        "panoptic_json": str(root / "panoptic_examples.json"),
        "instances_json": str(root / "instances_detection_format.json"),
    }


def _derived_paths(folder: Path) -> dict:
    return {
        "sem_seg_root": str(folder / "semantic"),
        "stuff_root": str(folder / "panoptic_stuff"),
        "json_file": str(folder / "instances_things.json"),
    }


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(
            f"COCO panoptic samples folder {root} not found; set {SAMPLES_ENV} to the folder "
            "holding images/, panoptic/ and panoptic_examples.json"
        )


def build_derived(root: Path, out_dir: os.PathLike) -> None:
    """Write, from the samples under ``root``, both conventions' semantic PNGs and the
    instance JSON restricted to thing categories and their annotations."""
    src, out = _source_paths(root), _derived_paths(Path(out_dir))
    os.makedirs(out["sem_seg_root"])
    os.makedirs(out["stuff_root"])
    pan_json = read_json(src["panoptic_json"])
    standard, separated = standard_label_map(STANDARD_META), separated_label_map(SEPARATED_META)
    for ann in pan_json["annotations"]:
        png = os.path.join(src["panoptic_root"], ann["file_name"])
        check_files([png])
        pan_ids = read_panoptic_png(png)
        segments = ann["segments_info"]
        write_png(
            semantic_from_panoptic(pan_ids, segments, standard),
            os.path.join(out["sem_seg_root"], ann["file_name"]),
        )
        write_png(
            semantic_from_panoptic(pan_ids, segments, separated),
            os.path.join(out["stuff_root"], ann["file_name"]),
        )

    instances = read_json(src["instances_json"])
    things = set(INSTANCES_META["thing_dataset_id_to_contiguous_id"])
    instances["categories"] = [c for c in instances["categories"] if c["id"] in things]
    instances["annotations"] = [a for a in instances["annotations"] if a["category_id"] in things]
    write_json(instances, out["json_file"])


def register_coco_samples(
    root: Optional[os.PathLike] = None, cache: Optional[os.PathLike] = None
) -> None:
    """(Re-)register the three sample datasets for the samples folder ``root`` (default
    :func:`samples_root`), with derived files under the cache root ``cache``."""
    root = Path(root or samples_root()).resolve()
    folder = dataset_dir(KIND, {"root": str(root)}, cache)
    src, derived = _source_paths(root), _derived_paths(folder)

    def ensure():
        _check_root(root)
        ensure_generated(folder, partial(build_derived, root))
        return read_json(src["panoptic_json"])

    def load_panoptic(metadata, sem_seg_root):
        dicts = panoptic_dicts(
            ensure(), src["image_root"], src["panoptic_root"], metadata, sem_seg_root
        )
        for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
            check_files(d[key] for d in dicts)
        return dicts

    def load_instances(name):
        ensure()
        dicts = load_coco_json(derived["json_file"], src["image_root"], name)
        check_files(d["file_name"] for d in dicts)
        return dicts

    def load_separated():
        dicts = load_panoptic(SEPARATED_META, derived["stuff_root"])
        by_id = {d["image_id"]: d for d in load_instances("coco_panoptic_samples_separated")}
        return [{**by_id[d["image_id"]], **d} for d in dicts]

    panoptic_common = {
        "image_root": src["image_root"],
        "panoptic_root": src["panoptic_root"],
        "panoptic_json": src["panoptic_json"],
        "json_file": derived["json_file"],
        "evaluator_type": "coco_panoptic_seg",
        "ignore_label": IGNORE_LABEL,
        "label_divisor": 1000,
    }
    register_dataset(
        "coco_panoptic_samples",
        lambda: load_panoptic(STANDARD_META, derived["sem_seg_root"]),
        {**STANDARD_META, **panoptic_common, "sem_seg_root": derived["sem_seg_root"]},
    )
    register_dataset(
        "coco_panoptic_samples_separated",
        load_separated,
        {**SEPARATED_META, **panoptic_common, "sem_seg_root": derived["stuff_root"]},
    )
    register_dataset(
        "coco_samples_instances",
        lambda: load_instances("coco_samples_instances"),
        {
            **INSTANCES_META,
            "image_root": src["image_root"],
            "json_file": derived["json_file"],
            "evaluator_type": "coco",
        },
    )


register_coco_samples()
