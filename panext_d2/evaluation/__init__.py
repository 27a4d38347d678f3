from .build import EVALUATOR_REGISTRY, build_evaluator
from . import empty_images  # noqa: F401  (registers "empty_images")
from . import ap50  # noqa: F401  (registers "coco_ap50")
from . import image_level  # noqa: F401  (registers "image_level")

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]
