"""Config keys of the low-cost semantic segmentation heads (panext_d2/modeling/lowcost/),
Kolhatkar (2020) ch. 4 (docs/DESIGN.md §3); their backbones' are in ``config/mobilenet.py`` and
``config/squeezenet.py``.

The models are detectron2's ``SemanticSegmentor``; these detectron2 keys are set by the YAML
configs, not here:
  MODEL.META_ARCHITECTURE "SemanticSegmentor";
  MODEL.BACKBONE.NAME "build_mobilenet_v1_backbone" (MODEL.MOBILENET.*, DEPTH_MULTIPLIER 0.5
  per §4.2.1) or "build_squeezenet_backbone" (MODEL.SQUEEZENET.*);
  MODEL.SEM_SEG_HEAD.NAME "FCNSkipHead" or "AtrousSegHead";
  MODEL.SEM_SEG_HEAD.IN_FEATURES: the scored map first plus the FCN skips, e.g. MobileNet
  FCN-8 ["conv13", "conv11", "conv5"], SqueezeNet v1.1 FCN-8s ["fire9", "pool3"]; the
  backbone's OUT_FEATURES must contain them;
  MODEL.SEM_SEG_HEAD.NUM_CLASSES 19 (Cityscapes, §4.1.1) or 2 (person crops, §4.3);
  MODEL.SEM_SEG_HEAD.IGNORE_VALUE 255 (detectron2's Cityscapes sem-seg labels);
  MODEL.SEM_SEG_HEAD.LOSS_WEIGHT 1.0.
"""

from detectron2.config import CfgNode as CN

from .mobilenet import add_mobilenet_config
from .squeezenet import add_squeezenet_config


def add_lowcost_seg_config(cfg):
    """MODEL.LOWCOST_SEG, plus the backbones' MODEL.MOBILENET and MODEL.SQUEEZENET."""
    add_mobilenet_config(cfg)
    add_squeezenet_config(cfg)
    c = cfg.MODEL.LOWCOST_SEG = CN()
    # Cross-entropy reduction. "sum": summed over each image's pixels, averaged over the
    # images of the batch (Kolhatkar (2020) §2.5.1 / §4.2.2: "calculated for each pixel and then
    # summed over the entire image"). "mean": averaged over labelled pixels (detectron2).
    c.LOSS_REDUCTION = "sum"
    # Inference: softmax on the score map, then bilinear upsampling of the probabilities
    # (§4.2.1: "a softmax operation followed by bilinear interpolation"); False upsamples the
    # logits (detectron2's heads). Training always applies the loss to upsampled logits.
    c.SOFTMAX_BEFORE_UPSAMPLE = True
    # Std of the truncated-normal init of the 1x1 scoring convs; 0 zero-initialises them, as
    # Long et al.'s FCN (the thesis says it follows Long et al., §4.2.1; it gives no init).
    c.SCORE_INIT_STD = 0.0
    # Init of the 4x4 stride-2 transposed convs: "bilinear" (Long et al.: initialised to
    # bilinear interpolation, then learned) or "default" (PyTorch's).
    c.DECONV_INIT = "bilinear"
    # Fitting an upsampled score map to its skip map when their sizes differ (inputs not a
    # multiple of the stride): "crop" (top-left aligned: cut / replicate at bottom-right, as
    # FCN's crop layer) or "interpolate" (bilinear resize). Our choice; the thesis is silent.
    c.SKIP_ALIGN = "crop"
    return cfg
