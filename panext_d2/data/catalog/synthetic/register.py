"""Registration of the synthetic sets in detectron2's DatasetCatalog / MetadataCatalog.

Registering costs nothing: a set is generated into the cache by the first
``DatasetCatalog.get`` of one of its names. Metadata paths are fixed at registration, from
the cache root given (default: ``$PANEXT_D2_CACHE`` at that time).
"""

import os
from dataclasses import asdict
from functools import partial
from typing import Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from . import instances, panoptic, sparse_semantic
from .cache import dataset_dir, ensure_generated
from ....utils.panoptic_conventions import separated_metadata, standard_metadata
from ....utils.panoptic_conventions import IGNORE_LABEL


def register_dataset(name: str, loader, metadata: dict) -> None:
    """Register ``name``, replacing an earlier registration of the same name."""
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
    if name in MetadataCatalog:
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)


def _generator(module, params, root):
    """The set's cache folder and a function that generates it if needed and returns it."""
    folder = dataset_dir(module.KIND, asdict(params), root)
    return folder, partial(ensure_generated, folder, partial(module.generate, params))


def register_synthetic_panoptic(
    name: str,
    root: Optional[os.PathLike] = None,
    num_images: int = 400,
    image_size: int = 128,
    seed: int = 0,
    **options,
) -> None:
    """Register ``name`` (standard convention, sem_seg_file_name = all-class semantic PNG)
    and ``name + "_separated"`` (Panoptic FPN convention: instance annotations + stuff PNG).

    ``root``: cache root (default ``$PANEXT_D2_CACHE``); ``options``: other
    :class:`PanopticParams` fields.
    """
    params = panoptic.PanopticParams(num_images, image_size, seed, **options)
    folder, ensure = _generator(panoptic, params, root)
    p = panoptic.paths(folder)
    common = {
        "dataset_root": str(folder),
        "image_root": p["image_root"],
        "panoptic_root": p["panoptic_root"],
        "panoptic_json": p["panoptic_json"],
        "json_file": p["json_file"],
        "evaluator_type": "coco_panoptic_seg",
        "ignore_label": IGNORE_LABEL,
        "label_divisor": panoptic.SEGMENT_ID_STRIDE,
    }
    standard = standard_metadata(panoptic.CATEGORIES)
    register_dataset(
        name,
        lambda: panoptic.load(ensure(), standard, p["sem_seg_root"]),
        {**standard, **common, "sem_seg_root": p["sem_seg_root"]},
    )

    separated_name, separated = name + "_separated", separated_metadata(panoptic.CATEGORIES)

    def load_separated():
        dicts = panoptic.load(ensure(), separated, p["stuff_root"])
        by_id = {
            d["image_id"]: d
            for d in load_coco_json(p["json_file"], p["image_root"], separated_name)
        }
        return [{**by_id[d["image_id"]], **d} for d in dicts]

    register_dataset(
        separated_name, load_separated, {**separated, **common, "sem_seg_root": p["stuff_root"]}
    )


def register_synthetic_instances(
    name: str,
    root: Optional[os.PathLike] = None,
    num_images: int = 400,
    image_size: int = 256,
    seed: int = 0,
    **options,
) -> None:
    """Register a person set in COCO instance format; ``options``: other
    :class:`InstancesParams` fields."""
    params = instances.InstancesParams(num_images, image_size, seed, **options)
    folder, ensure = _generator(instances, params, root)
    p = instances.paths(folder)
    metadata = {
        "dataset_root": str(folder),
        "thing_classes": [c["name"] for c in instances.CATEGORIES],
        "thing_colors": [c["color"] for c in instances.CATEGORIES],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(instances.CATEGORIES)
        },
        "image_root": p["image_root"],
        "json_file": p["json_file"],
        "evaluator_type": "coco",
    }
    register_dataset(name, lambda: instances.load(ensure(), name), metadata)


def register_synthetic_sparse(
    name: str,
    root: Optional[os.PathLike] = None,
    num_images: int = 400,
    image_size: int = 128,
    seed: int = 0,
    **options,
) -> None:
    """Register a sparse semantic set (most images empty); ``options``: other
    :class:`SparseParams` fields (``empty_share``, ``num_classes``, ...)."""
    params = sparse_semantic.SparseParams(num_images, image_size, seed, **options)
    folder, ensure = _generator(sparse_semantic, params, root)
    p = sparse_semantic.paths(folder)
    k = params.num_classes + 1
    metadata = {
        "dataset_root": str(folder),
        "stuff_classes": sparse_semantic.CLASSES[:k],
        "stuff_colors": sparse_semantic.COLORS[:k],
        "image_root": p["image_root"],
        "sem_seg_root": p["sem_seg_root"],
        "ignore_label": IGNORE_LABEL,
        "evaluator_type": "empty_images",  # Andrade (2021) §7.2 metrics
    }
    register_dataset(name, lambda: sparse_semantic.load(ensure()), metadata)


# name -> (register function, arguments); train and val differ by seed
DEFAULT_SPLITS = {
    "synthetic_panoptic_train": (register_synthetic_panoptic, {"num_images": 400, "seed": 0}),
    "synthetic_panoptic_val": (register_synthetic_panoptic, {"num_images": 60, "seed": 1}),
    "synthetic_instances_train": (register_synthetic_instances, {"num_images": 400, "seed": 0}),
    "synthetic_instances_val": (register_synthetic_instances, {"num_images": 60, "seed": 1}),
    "synthetic_sparse_train": (register_synthetic_sparse, {"num_images": 400, "seed": 0}),
    "synthetic_sparse_val": (register_synthetic_sparse, {"num_images": 100, "seed": 1}),
}


def register_all_synthetic(root: Optional[os.PathLike] = None) -> None:
    """(Re-)register every default split (the panoptic ones also as ``*_separated``)
    under the cache root ``root`` (default ``$PANEXT_D2_CACHE``)."""
    for name, (register, kwargs) in DEFAULT_SPLITS.items():
        register(name, root=root, **kwargs)
