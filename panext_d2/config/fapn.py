"""Config keys of the feature-aligned pyramid decoder (``FaPNDecoder``, Andrade (2021) §5.6, §8.4:
ResNet50-FaPN, Huang et al. 2021)."""

from detectron2.config import CfgNode as CN


def add_fapn_config(cfg):
    cfg.MODEL.ENCDEC.FAPN = CN()
    # Width of every pyramid level (FPN's 256, kept by FaPN).
    cfg.MODEL.ENCDEC.FAPN.CHANNELS = 256
    # Normalisation of the lateral / output convs ("" = none, as detectron2's FPN default).
    cfg.MODEL.ENCDEC.FAPN.NORM = ""
    # Offset groups of the feature alignment module's modulated deformable 3x3 conv (FaPN: 8);
    # must divide CHANNELS.
    cfg.MODEL.ENCDEC.FAPN.DEFORMABLE_GROUPS = 8
    # Deformable conv implementation (panext_d2/layers/deform_conv.py): "auto" | "fast" |
    # "torchvision".
    cfg.MODEL.ENCDEC.FAPN.DEFORM_IMPL = "auto"
    return cfg
