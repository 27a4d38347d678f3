"""Atrous segmenter head (Kolhatkar (2020) §4.2.1 "Atrous Convolution"): no decoder, a 1x1 class
scoring conv on the encoder's last map, softmax and bilinear upsampling to the input size.

The output stride is the backbone's (``MODEL.MOBILENET.OUTPUT_STRIDE`` 16 / 8,
``MODEL.SQUEEZENET.OUTPUT_STRIDE`` 8 / 4, atrous convolutions inside the encoder); at the
backbone's plain stride (MobileNet 32, SqueezeNet 16) this is Table 4.1's shared baseline
("equivalent to using bilinear upsampling on the output of the respective encoder").
"""

from typing import Dict

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY

from .common import ScoringHead, score_conv, select_features

__all__ = ["AtrousSegHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class AtrousSegHead(ScoringHead):
    """Scores one backbone map (``MODEL.SEM_SEG_HEAD.IN_FEATURES``, a single name)."""

    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, score_init_std: float = 0.0, **kwargs):
        """
        Args:
            input_shape: exactly one backbone output, the map to score.
            score_init_std: see :func:`~panext_d2.modeling.lowcost.common.score_conv`.
            kwargs: :class:`~panext_d2.modeling.lowcost.common.ScoringHead` arguments.
        """
        super().__init__(**kwargs)
        if len(input_shape) != 1:
            raise ValueError(
                f"AtrousSegHead scores exactly one feature map, got {list(input_shape)}"
            )
        ((self.in_feature, shape),) = input_shape.items()
        self.stride = shape.stride
        self.score = score_conv(shape.channels, self.num_classes, score_init_std)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        return {
            "input_shape": select_features(input_shape, cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES),
            "score_init_std": cfg.MODEL.LOWCOST_SEG.SCORE_INIT_STD,
            **cls.common_config(cfg),
        }

    def scores(self, features):
        return self.score(features[self.in_feature]), self.stride
