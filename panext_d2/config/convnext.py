"""Config keys of the ConvNeXt / PaNeXt-e backbones (panext_d2/modeling/backbone/convnext.py).

Reused detectron2 keys: MODEL.BACKBONE.NAME picks the variant (build_convnext_backbone,
build_panext_e_backbone, or their FPN P2-P7 versions build_convnext_fpn_backbone,
build_panext_e_fpn_backbone); MODEL.BACKBONE.FREEZE_AT (detectron2's default 2, which
PanopticFCN keeps: stem + stage 1 frozen); MODEL.FPN.IN_FEATURES (empty = res2..res5),
OUT_CHANNELS (256), NORM (""), FUSE_TYPE ("sum"), all as in PanopticFCN.
ImageNet weights expect INPUT.FORMAT "RGB" with timm's mean / std as MODEL.PIXEL_MEAN
[123.675, 116.28, 103.53] and MODEL.PIXEL_STD [58.395, 57.12, 57.375].
"""
from detectron2.config import CfgNode as CN


def add_convnext_config(cfg):
    c = cfg.MODEL.CONVNEXT = CN()
    # Blocks per stage: ConvNeXt-T (thesis §3.1.1, timm convnext_tiny). The thesis tried 19
    # blocks in stage 3 for PaNeXt-e and rejected it (§3.1.1).
    c.DEPTHS = [3, 3, 9, 3]
    # Channels per stage: ConvNeXt-T (thesis §3.1.1, timm convnext_tiny).
    c.DIMS = [96, 192, 384, 768]
    # Stochastic depth (timm DropPath), linear over the blocks up to this rate: thesis §3.3.2
    # ("DropPath rate 0.2"; it cites FractalNet's drop-path, timm's is stochastic depth).
    c.DROP_PATH_RATE = 0.2
    # Features returned, strides 4, 8, 16, 32 (thesis §3.1.1).
    c.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Layer-wise LR decay factor read by the optimizer builder through
    # convnext.layer_lr_decay_multiplier; 1.0 = off (the thesis uses none; the official
    # ConvNeXt detection recipes use 0.7-0.95 with AdamW).
    c.LAYER_DECAY = 1.0

    # DropBlock (timm DropBlock2d) on the residual branch of each block of STAGES.
    c.DROP_BLOCK = CN()
    # Probability for the plain ConvNeXt variant: 0, since §3.1 gives DropBlock to PaNeXt-e
    # only (PaNeXt-e uses PANEXT_E.DROP_BLOCK_PROB instead).
    c.DROP_BLOCK.PROB = 0.0
    # Block size: thesis §3.3.2.
    c.DROP_BLOCK.SIZE = 5
    # 1-based stages: 3 and 4 as in the DropBlock paper (Ghiasi et al. 2018, groups 3-4 of
    # ResNet); the thesis does not say.
    c.DROP_BLOCK.STAGES = [3, 4]

    # PaNeXt-e ("improved ConvNeXt-tiny", thesis §3.1.1); shares every key above.
    e = c.PANEXT_E = CN()
    # 1-based stages whose blocks get the extra pointwise 4C -> 4C linear: [1, 2, 4] per the
    # text (§3.1.1, +30.5 M parameters); [1, 2] (+2.2 M) matches the reported 165 MB model
    # size (docs/DESIGN.md §1.2).
    e.EXTENDED_STAGES = [1, 2, 4]
    # Activation after the extra linear: the thesis does not say; on, like after the first
    # pointwise linear (docs/DESIGN.md §1).
    e.EXTENDED_ACT = True
    # SmeLU beta (eq. 2.6.8): the thesis gives none; 2.0 is the default of the public SmeLU
    # implementation it most likely installed (docs/DESIGN.md §1).
    e.SMELU_BETA = 2.0
    # DropBlock probability for PaNeXt-e: thesis §3.3.2 (0.05, size 5).
    e.DROP_BLOCK_PROB = 0.05
    return cfg
