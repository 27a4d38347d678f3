from . import catalog  # noqa: F401  (registers every dataset name)
from .mappers import MAPPER_REGISTRY, build_dataset_mapper
from .samplers import ForegroundBalancedSampler, build_train_sampler  # noqa: F401

__all__ = ["MAPPER_REGISTRY", "build_dataset_mapper"]
