"""PaNeXt (Debucean (2022) ch. 3): importing this package registers the ``PaNeXt`` meta-architecture."""

from .heads import KernelHead, PositionHead
from .hr_processor import HRProcessor
from .meta_arch import PaNeXt

__all__ = ["KernelHead", "PositionHead", "HRProcessor", "PaNeXt"]
