"""Seed-003 encoder-decoder segmenter (SPEC §4); importing registers ``EncDecSegmentor``."""

from .fuse import MultiLevelFuse, SqueezeExcitation
from .hypercolumns import InvertedHypercolumns
from .losses import focal_loss, foreground_dice_loss, pixel_cross_entropy
from .meta_arch import EncDecHead, EncDecSegmentor
from .unet import UNetDecoder

__all__ = [
    "EncDecHead",
    "EncDecSegmentor",
    "InvertedHypercolumns",
    "MultiLevelFuse",
    "SqueezeExcitation",
    "UNetDecoder",
    "focal_loss",
    "foreground_dice_loss",
    "pixel_cross_entropy",
]
