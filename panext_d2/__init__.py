"""panext_d2: PaNeXt, SSD-ISB and encoder-decoder segmenters as a detectron2 extension.

``import panext_d2`` registers every dataset, mapper, evaluator, backbone, head and
meta-architecture of the package in detectron2's registries.
"""
from . import data, evaluation, modeling  # noqa: F401  (registrations)
from .config import add_panext_d2_config, get_panext_cfg
from .engine import Trainer

__all__ = ["add_panext_d2_config", "get_panext_cfg", "Trainer"]
