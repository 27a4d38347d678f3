"""Config keys of MobileNet-v1 (panext_d2/modeling/backbone/mobilenet_v1.py), the backbone of
SSD / SSD-ISB and of the low-cost segmenters: Kolhatkar, *Real-Time Instance and Semantic
Segmentation Using Deep Learning* (2020), Table 2.5; TF-slim / TF OD API defaults where the
thesis is silent."""
from detectron2.config import CfgNode as CN


def add_mobilenet_config(cfg):
    """MODEL.MOBILENET; a no-op when present (both SSD and the segmenters use it)."""
    if "MOBILENET" in cfg.MODEL:
        return cfg
    c = cfg.MODEL.MOBILENET = CN()
    # Depth (width) multiplier: 1.0 or 0.75 for SSD (Kolhatkar (2020) §3.2.1, the two COCO SSD
    # checkpoints), 0.5 for the semantic segmenters (docs/DESIGN.md §3; Kolhatkar (2020) §4.2).
    c.DEPTH_MULTIPLIER = 1.0
    # Smallest layer depth after the multiplier: TF-slim mobilenet_v1 default (8).
    c.MIN_DEPTH = 8
    # Returned layers, named after Table 2.5's rows / TF-slim's Conv2d_<k>: conv11 (stride
    # 16) and conv13 (stride 32) feed SSD (TF OD API ssd_mobilenet_v1 feature extractor:
    # Conv2d_11_pointwise, Conv2d_13_pointwise); conv5 (stride 8) is the FCN-8 skip.
    c.OUT_FEATURES = ["conv11", "conv13"]
    # 32 (Table 2.5), or 16 / 8 with atrous convolutions (Kolhatkar (2020) §4.2, DeepLab-style as
    # TF-slim's mobilenet_v1_base(output_stride=...)).
    c.OUTPUT_STRIDE = 32
    # Multiplies the dilation of conv13's depthwise conv ("atrous rate of the last layer",
    # Kolhatkar (2020) §4.3 studies 1, 3, 5); 1 = Table 2.5.
    c.LAST_ATROUS_RATE = 1
    # detectron2 norm name: "BN" (§2.3.4: every conv is followed by batch normalization; the
    # TF OD API trains it: batch_norm { train: true }), "FrozenBN", "SyncBN".
    c.NORM = "BN"
    # "relu6" (TF OD API conv_hyperparams activation: RELU_6, and timm's mobilenetv1_100) or
    # "relu" (the thesis' text, §2.3.4, says ReLU).
    c.ACTIVATION = "relu6"
    # BN epsilon: PyTorch / timm's 1e-5, matching the timm ImageNet weights this package
    # converts; the TF OD API uses 0.001 (set it for weights trained in TensorFlow).
    c.BN_EPS = 1e-5
    # BN running-average momentum (PyTorch convention, = 1 - TF decay): PyTorch's default
    # 0.1; the TF OD API uses decay 0.9997, i.e. 0.0003.
    c.BN_MOMENTUM = 0.1
    # Leading layers frozen (conv0 = 1, up to 14); 0: the TF OD API fine-tunes every layer.
    c.FREEZE_AT = 0
    # Std of the truncated-normal conv initialisation: TF OD API conv_hyperparams 0.03.
    c.INIT_STD = 0.03
    return cfg
