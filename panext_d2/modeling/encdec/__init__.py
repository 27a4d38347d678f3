"""Seed-003 encoder-decoder segmenter (SPEC §4); importing registers ``EncDecSegmentor``,
``ImageClassifier`` and ``TwoStageSegmentor``."""

from .classifier import ImageClassifier
from .fuse import MultiLevelFuse, SqueezeExcitation
from .hypercolumns import InvertedHypercolumns
from .losses import focal_loss, foreground_dice_loss, pixel_cross_entropy
from .meta_arch import EncDecHead, EncDecSegmentor
from .two_stage import TwoStageSegmentor
from .unet import UNetDecoder

__all__ = [
    "EncDecHead",
    "EncDecSegmentor",
    "ImageClassifier",
    "InvertedHypercolumns",
    "MultiLevelFuse",
    "SqueezeExcitation",
    "TwoStageSegmentor",
    "UNetDecoder",
    "focal_loss",
    "foreground_dice_loss",
    "pixel_cross_entropy",
]
