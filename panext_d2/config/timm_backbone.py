"""Config keys of the timm feature-extractor backbone (``build_timm_features_backbone``): any
timm model with ``features_only`` support as a detectron2 backbone, e.g. the EfficientNet-B2
encoder of Andrade's (2021) EfficientDet-D2 baseline (§8.4)."""

from detectron2.config import CfgNode as CN


def add_timm_backbone_config(cfg):
    cfg.MODEL.TIMM = CN()
    # timm model name, built without downloading anything.
    cfg.MODEL.TIMM.NAME = "efficientnet_b2"
    # Indices into the model's feature_info; outputs are named "c<log2 stride>" ("c2" = stride 4).
    # EfficientNet: 1, 2, 3, 4 = strides 4, 8, 16, 32.
    cfg.MODEL.TIMM.OUT_INDICES = [1, 2, 3, 4]
    # Local checkpoint of the whole timm model (a state dict, as timm saves it); "" = random
    # initialisation. Never downloaded.
    cfg.MODEL.TIMM.WEIGHTS = ""
    # Stochastic depth of the timm model (timm's EfficientNet-B2 recipe trains with 0.2; seed
    # silent, so off by default).
    cfg.MODEL.TIMM.DROP_PATH_RATE = 0.0
    return cfg
