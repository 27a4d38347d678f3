"""SSD on MobileNet-v1 (Kolhatkar (2020) §3.1.1), usable alone and as the base of SSD-ISB."""

from .box_coder import SSDBoxCoder
from .default_boxes import DefaultBoxGenerator, default_box_specs
from .detector import SSD
from .extra_layers import SSDExtraLayers
from .head import SSDPredictor
from .losses import hard_negative_mask, ssd_losses
from .matching import match_default_boxes
from .postprocess import ssd_inference

__all__ = [
    "SSD",
    "SSDBoxCoder",
    "DefaultBoxGenerator",
    "default_box_specs",
    "SSDExtraLayers",
    "SSDPredictor",
    "hard_negative_mask",
    "ssd_losses",
    "match_default_boxes",
    "ssd_inference",
]
