"""Low-cost semantic segmenters of Kolhatkar (2020) ch. 4 (docs/DESIGN.md §3): heads for detectron2's
``SemanticSegmentor`` on MobileNet-v1 / SqueezeNet. Importing registers ``FCNSkipHead`` and
``AtrousSegHead`` in ``SEM_SEG_HEADS_REGISTRY``."""

from .atrous import AtrousSegHead
from .common import ScoringHead, align_to, pixel_softmax_cross_entropy, upsample_scores
from .fcn import FCNSkipHead, bilinear_upsample_kernel

__all__ = [
    "AtrousSegHead",
    "FCNSkipHead",
    "ScoringHead",
    "align_to",
    "bilinear_upsample_kernel",
    "pixel_softmax_cross_entropy",
    "upsample_scores",
]
