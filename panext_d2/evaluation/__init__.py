from .build import EVALUATOR_REGISTRY, build_evaluator
from . import empty_images  # noqa: F401  (registers "empty_images")
from . import ap50  # noqa: F401  (registers "coco_ap50")

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]
