from .build import EVALUATOR_REGISTRY, build_evaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]
