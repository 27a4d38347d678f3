"""Deterministic synthetic datasets (panoptic shapes, persons, sparse semantic), generated
lazily into the cache and registered in detectron2's catalogs on import."""

from .cache import cache_root, dataset_dir, ensure_generated
from .instances import InstancesParams
from .panoptic import PanopticParams
from .register import (
    DEFAULT_SPLITS,
    register_all_synthetic,
    register_synthetic_instances,
    register_synthetic_panoptic,
    register_synthetic_sparse,
)
from .sparse_semantic import SparseParams

register_all_synthetic()

__all__ = [
    "DEFAULT_SPLITS",
    "InstancesParams",
    "PanopticParams",
    "SparseParams",
    "cache_root",
    "dataset_dir",
    "ensure_generated",
    "register_all_synthetic",
    "register_synthetic_instances",
    "register_synthetic_panoptic",
    "register_synthetic_sparse",
]
