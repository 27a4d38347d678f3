"""Andrade (2021) encoder-decoder segmenter (docs/DESIGN.md §4); importing registers ``EncDecSegmentor``,
``ImageClassifier``, ``TwoStageSegmentor`` and the decoders (``UNetDecoder``,
``BiFPNDecoder``, ``FaPNDecoder``)."""

from .bifpn import BiFPNDecoder
from .build import ENCDEC_DECODER_REGISTRY, build_encdec_decoder
from .classifier import ImageClassifier
from .fapn import FaPNDecoder, FeatureAlignmentModule, FeatureSelectionModule
from .fuse import MultiLevelFuse, SqueezeExcitation
from .hypercolumns import InvertedHypercolumns
from .losses import focal_loss, foreground_dice_loss, pixel_cross_entropy
from .meta_arch import EncDecHead, EncDecSegmentor
from .two_stage import TwoStageSegmentor
from .unet import UNetDecoder

__all__ = [
    "BiFPNDecoder",
    "ENCDEC_DECODER_REGISTRY",
    "EncDecHead",
    "EncDecSegmentor",
    "FaPNDecoder",
    "FeatureAlignmentModule",
    "FeatureSelectionModule",
    "ImageClassifier",
    "InvertedHypercolumns",
    "MultiLevelFuse",
    "SqueezeExcitation",
    "TwoStageSegmentor",
    "UNetDecoder",
    "build_encdec_decoder",
    "focal_loss",
    "foreground_dice_loss",
    "pixel_cross_entropy",
]
