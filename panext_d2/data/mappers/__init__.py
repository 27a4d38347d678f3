"""Dataset mappers, selected by ``cfg.INPUT.DATASET_MAPPER_NAME``.

A mapper is registered as a class with a ``from_config(cfg, is_train)`` (detectron2's
``@configurable`` convention), so ``build_dataset_mapper`` can construct it for training
and for inference.
"""
from ...utils.registry import NamedRegistry

MAPPER_REGISTRY = NamedRegistry("DATASET_MAPPER")
MAPPER_REGISTRY.__doc__ = "Dataset mappers, looked up by cfg.INPUT.DATASET_MAPPER_NAME."
from . import detection  # noqa: E402,F401  (registers "default")
from . import ssd  # noqa: E402,F401  (registers "ssd")
from . import semantic  # noqa: E402,F401  (registers "semantic")
from . import panext  # noqa: E402,F401  (registers "panext_panoptic")


def build_dataset_mapper(cfg, is_train: bool):
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if name not in MAPPER_REGISTRY:
        raise KeyError(
            f"INPUT.DATASET_MAPPER_NAME={name!r} is not a registered mapper; "
            f"expected one of {MAPPER_REGISTRY.names()}"
        )
    return MAPPER_REGISTRY.get(name)(cfg, is_train)


__all__ = ["MAPPER_REGISTRY", "build_dataset_mapper"]
