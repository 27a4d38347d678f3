"""Kolhatkar (2020) Table 4.1 / 4.2 architectures as configs, shared by the low-cost tests."""
# Kolhatkar (2020) Table 4.1 / 4.2 architectures: backbone, output stride, head, its input maps.
VARIANTS = {
    "SqzNet-Base": ("squeezenet", 16, "FCNSkipHead", ["fire9"]),
    "SqzNet-FCN8": ("squeezenet", 16, "FCNSkipHead", ["fire9", "pool3"]),
    "SqzNet-FCN4": ("squeezenet", 16, "FCNSkipHead", ["fire9", "pool3", "pool1"]),
    "SqzNet-Stride8": ("squeezenet", 8, "AtrousSegHead", ["fire9"]),
    "SqzNet-Stride4": ("squeezenet", 4, "AtrousSegHead", ["fire9"]),
    "MN-Base": ("mobilenet", 32, "FCNSkipHead", ["conv13"]),
    "MN-FCN16": ("mobilenet", 32, "FCNSkipHead", ["conv13", "conv11"]),
    "MN-FCN8": ("mobilenet", 32, "FCNSkipHead", ["conv13", "conv11", "conv5"]),
    "MN-Stride16": ("mobilenet", 16, "AtrousSegHead", ["conv13"]),
    "MN-Stride8": ("mobilenet", 8, "AtrousSegHead", ["conv13"]),
}


def make_lowcost_cfg(variant, num_classes=19, **lowcost):
    """A SemanticSegmentor config for one of :data:`VARIANTS` (MobileNet at depth multiplier
    0.5, SqueezeNet v1.1, as Kolhatkar (2020) §4.2.1)."""
    from panext_d2 import get_panext_cfg

    backbone, output_stride, head, in_features = VARIANTS[variant]
    cfg = get_panext_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    if backbone == "mobilenet":
        cfg.MODEL.BACKBONE.NAME = "build_mobilenet_v1_backbone"
        cfg.MODEL.MOBILENET.DEPTH_MULTIPLIER = 0.5
        cfg.MODEL.MOBILENET.OUTPUT_STRIDE = output_stride
        cfg.MODEL.MOBILENET.OUT_FEATURES = list(in_features)
    else:
        cfg.MODEL.BACKBONE.NAME = "build_squeezenet_backbone"
        cfg.MODEL.SQUEEZENET.OUTPUT_STRIDE = output_stride
        cfg.MODEL.SQUEEZENET.OUT_FEATURES = list(in_features)
    cfg.MODEL.SEM_SEG_HEAD.NAME = head
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = list(in_features)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    for key, value in lowcost.items():
        cfg.MODEL.LOWCOST_SEG[key] = value
    return cfg
