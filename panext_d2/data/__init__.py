from . import datasets  # noqa: F401  (registers datasets)
from .mappers import MAPPER_REGISTRY, build_dataset_mapper

__all__ = ["MAPPER_REGISTRY", "build_dataset_mapper"]
