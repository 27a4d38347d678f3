"""Config keys of SqueezeNet (panext_d2/modeling/backbone/squeezenet.py), a backbone of the
low-cost segmenters: Kolhatkar (2020) Table 2.4, §4.2.1 (docs/DESIGN.md §3.1)."""
from detectron2.config import CfgNode as CN


def add_squeezenet_config(cfg):
    """MODEL.SQUEEZENET; a no-op when present."""
    if "SQUEEZENET" in cfg.MODEL:
        return cfg
    c = cfg.MODEL.SQUEEZENET = CN()
    # "v1.1" or "v1.0" (the "v" keeps yacs from reading the value as a float). The thesis
    # text points at Table 2.4 (v1.0), but Table 4.2's counts match v1.1 exactly
    # (SqzNet-Base 732 243 = 722 496 + 9 747; docs/DESIGN.md §3), hence the default.
    c.VERSION = "v1.1"
    # Returned layers, named after Table 2.4 (conv1, pool<k>, fire<k>; pool<k> follows layer
    # k). "fire9" is the encoder output (§4.2.1: classifier conv10 and global pooling
    # removed); FCN skips use the pooled maps: v1.1 "pool3" (stride 8) / "pool1" (stride 4),
    # v1.0 "pool4" / "pool1".
    c.OUT_FEATURES = ["fire9"]
    # 16: the network's own (§4.2.1 "SqueezeNet downsamples the input by a factor of 16");
    # 8 or 4: atrous (§4.2.1, DeepLab-style; Table 4.1 reports 8 only).
    c.OUTPUT_STRIDE = 16
    # Multiplies the dilation of fire9's 3x3 expand conv, the last spatial layer (§4.3 studies
    # 1, 3, 5 for the last layer); 1 = Table 2.4.
    c.LAST_ATROUS_RATE = 1
    # "same": TensorFlow SAME padding of conv1 / strided pools (the thesis used TensorFlow,
    # §4.2.2; stride-s maps have ceil(H/s) cells, so FCN steps line up). "torchvision":
    # exactly torchvision's squeezenet1_x().features (no conv1 padding, ceil-mode pools).
    c.PADDING = "same"
    return cfg
