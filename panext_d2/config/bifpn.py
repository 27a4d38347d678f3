"""Config keys of the weighted BiFPN decoder (``BiFPNDecoder``, Andrade (2021) §5.5, §8.4:
EfficientDet-D2 = EfficientNet-B2 + weighted BiFPN)."""

from detectron2.config import CfgNode as CN


def add_bifpn_config(cfg):
    cfg.MODEL.ENCDEC.BIFPN = CN()
    # Width and number of stacked BiFPN layers: EfficientDet-D2's W_bifpn = 112, D_bifpn = 5
    # (Tan et al. 2020, Table 1).
    cfg.MODEL.ENCDEC.BIFPN.CHANNELS = 112
    cfg.MODEL.ENCDEC.BIFPN.NUM_LAYERS = 5
    # Levels added below the coarsest encoder feature by stride-2 max pooling (P6, P7 from C5:
    # the "two extra pooling layers" of §8.4); with MODEL.ENCDEC.IN_FEATURES [c3, c4, c5] the
    # decoder has the 5 outputs P3-P7 that feed the hypercolumns.
    cfg.MODEL.ENCDEC.BIFPN.NUM_EXTRA_LEVELS = 2
    # Normalisation and activation after each node's depthwise-separable conv (EfficientDet:
    # BN and swish).
    cfg.MODEL.ENCDEC.BIFPN.NORM = "BN"
    cfg.MODEL.ENCDEC.BIFPN.ACTIVATION = "swish"
    # Node fusion: "fast_normalized" (eq. 5.2, ReLU weights over their sum + EPS) | "sum".
    cfg.MODEL.ENCDEC.BIFPN.FUSION = "fast_normalized"
    cfg.MODEL.ENCDEC.BIFPN.EPS = 1e-4
    return cfg
