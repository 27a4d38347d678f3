"""Config keys of the Andrade (2021) encoder-decoder segmenter (docs/DESIGN.md §4): U-Net decoder, inverted
hypercolumns, multi-level fuse block, losses, image-level batch sampling, the §7.2 metrics
and the semantic mapper. Each default names its source; "thesis silent" marks our decisions.

Table 8.2 / 8.3 / 8.5 rows as configs (with MODEL.META_ARCHITECTURE "EncDecSegmentor"):
  U-Net CE         HEAD "last_layer",   LOSS.MAIN "cross_entropy", LOSS.FG_WEIGHT 0.0
  U-Net focal      HEAD "last_layer",   LOSS.MAIN "focal",         LOSS.FG_WEIGHT 0.0
  Hypercolumns     HEAD "hypercolumns", LOSS.FG_WEIGHT 0.0
  + ConvFuse       HEAD "fuse_block", FUSE.SE_IN False, FUSE.SE_OUT False
  + SE Block In    HEAD "fuse_block", FUSE.SE_OUT False
  + SE Block Out   HEAD "fuse_block" (every FUSE switch on) = "Proposed"
(§7.3.3: the auxiliary loss "is only used in the proposed model"; the ablation rows of
Table 8.5 do not say whether they kept it.)

Two-stage rows (Tables 8.2 / 8.3, panext_d2/modeling/encdec/two_stage.py):
  classifier       MODEL.META_ARCHITECTURE "ImageClassifier", MODEL.IMAGE_CLASSIFIER.*
  segmenter        an "EncDecSegmentor" U-Net trained on non-empty images only
                   (DATALOADER.FOREGROUND_SAMPLING.FOREGROUND_SHARE 1.0) or on all images
  pipeline         MODEL.META_ARCHITECTURE "TwoStageSegmentor", MODEL.TWO_STAGE.*
"""

from detectron2.config import CfgNode as CN


def add_encdec_config(cfg):
    cfg.MODEL.ENCDEC = CN()
    # Encoder = any registered detectron2 backbone (cfg.MODEL.BACKBONE.NAME; Andrade (2021) §7.3.1:
    # ResNet-50, "build_resnet_backbone" with MODEL.RESNETS.OUT_FEATURES listing these names).
    # Finest first; the U-Net decoder has one stage per feature after the coarsest.
    cfg.MODEL.ENCDEC.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    # Decoder architecture (panext_d2/modeling/encdec/build.py registry): "UNetDecoder" (§6.1.1,
    # the thesis' model), "BiFPNDecoder" (EfficientDet-D2, §5.5 / §8.4, MODEL.ENCDEC.BIFPN),
    # "FaPNDecoder" (ResNet50-FaPN, §5.6 / §8.4, MODEL.ENCDEC.FAPN).
    cfg.MODEL.ENCDEC.DECODER_NAME = "UNetDecoder"
    # What the classifier reads: "last_layer" = the decoder's finest output (the plain U-Net,
    # or the plain EfficientDet / FaPN baseline of Table 8.4) | "hypercolumns" (eq. 6.1 over
    # every decoder output) | "fuse_block" (eq. 6.2 on the hypercolumns: the thesis' model,
    # "Proposed" in Tables 8.2 / 8.3; the default).
    cfg.MODEL.ENCDEC.HEAD = "fuse_block"
    # Output width of each decoder stage, coarsest stage first; the length sets the depth.
    # The first len(IN_FEATURES) - 1 stages take the skips res4..res2; further stages
    # upsample x2 without a skip. U-Net's decoder mirrors its encoder back to the input
    # resolution (§5.3, Fig. 5.6), and eq. 6.1 sums every decoder layer: five stages for
    # ResNet-50 (strides 16, 8, 4, 2, 1). Widths: thesis silent; the common
    # segmentation_models_pytorch U-Net widths, on which the SIIM-ACR competition's winning
    # U-Nets were built.
    cfg.MODEL.ENCDEC.DECODER_CHANNELS = [256, 128, 64, 32, 16]
    # Common width C of the inverted hypercolumns (eq. 6.1), also the fuse block's width.
    # Thesis silent: 64, the width of the stride-4 decoder stage.
    cfg.MODEL.ENCDEC.HYPERCOLUMN_CHANNELS = 64
    # Normalisation after every decoder / fuse 3x3 conv (§6.1.3: BatchNorm; "SyncBN" under DDP).
    cfg.MODEL.ENCDEC.NORM = "BN"
    # Classes including background (label 0). Default: COCO BikeCar, background / bicycle /
    # car (§7.1.2); SIIM-ACR uses 2.
    cfg.MODEL.ENCDEC.NUM_CLASSES = 3
    # Label ignored by every loss (detectron2's sem-seg convention, our datasets' ignore_label).
    cfg.MODEL.ENCDEC.IGNORE_VALUE = 255
    # Inputs are zero-padded to a multiple of this so each stage halves exactly (ResNet output
    # stride 32); the decoder also matches sizes by interpolation, so 0 works as well.
    cfg.MODEL.ENCDEC.SIZE_DIVISIBILITY = 32
    # Whether the last 3x3 conv before the 1x1 classifier (the fuse block's last conv of F for
    # "fuse_block", the last U-Net stage's second conv for "last_layer") ends in a ReLU. True: the
    # thesis (§6.1.3 and Fig. 6.3: the three convs of F are "followed by Batch Normalization and
    # ReLU"; U-Net's convs are followed by ReLU, §5.3). False: BN only, for training from
    # scratch (the CPU quick configs): there the classifier's foreground weights turn
    # negative early, the net encodes foreground as zeroed features, those ReLUs die and every
    # pixel is predicted background (fg IoU 0); signed features avoid that. "hypercolumns"
    # classifies X of eq. 6.1 (a sum of 1x1 convs, no ReLU), so it is unaffected.
    cfg.MODEL.ENCDEC.CLASSIFIER_INPUT_RELU = True

    # Multi-level fuse block Z' = psi2(F(psi1(X))) (eq. 6.2); used by HEAD "fuse_block".
    cfg.MODEL.ENCDEC.FUSE = CN()
    cfg.MODEL.ENCDEC.FUSE.SE_IN = True  # psi1 (Table 8.5 "+ SE Block In")
    cfg.MODEL.ENCDEC.FUSE.CONV = True  # F (Table 8.5 "+ ConvFuse")
    cfg.MODEL.ENCDEC.FUSE.SE_OUT = True  # psi2 (Table 8.5 "+ SE Block Out")
    cfg.MODEL.ENCDEC.FUSE.NUM_CONVS = 3  # "three 3x3 convolutions" (§6.1.3)
    # SE reduction ratio r: thesis silent; 16 as in the SE paper (Hu et al. 2018), docs/DESIGN.md §4.
    cfg.MODEL.ENCDEC.FUSE.SE_REDUCTION = 16

    cfg.MODEL.ENCDEC.LOSS = CN()
    # Main pixel loss on all images: "cross_entropy" (§6.2.1, eq. 5.6) | "focal" (§7.3.3
    # footnote 2, Table 8.2 "U-Net Focal Loss", eq. 5.8: softmax focal loss without class
    # weights).
    cfg.MODEL.ENCDEC.LOSS.MAIN = "cross_entropy"
    cfg.MODEL.ENCDEC.LOSS.FOCAL_GAMMA = 2.0  # thesis silent; 2 as in Lin et al. 2017, docs/DESIGN.md §4
    # alpha of eq. 6.4, weight of the foreground soft-Dice of eq. 6.3 (§7.3.3: 0.1); 0 disables.
    cfg.MODEL.ENCDEC.LOSS.FG_WEIGHT = 0.1

    # Image-level batch sampling (§2.4.1, §8.1), used when DATALOADER.SAMPLER_TRAIN is
    # "ForegroundBalancedSampler" (panext_d2/data/samplers.py).
    cfg.DATALOADER.FOREGROUND_SAMPLING = CN()
    # "random" | "under" | "over"; §8.1 adopts under-sampling for every later experiment.
    cfg.DATALOADER.FOREGROUND_SAMPLING.MODE = "under"
    # Share of foreground images in every per-process batch (§8.1: 50%).
    cfg.DATALOADER.FOREGROUND_SAMPLING.FOREGROUND_SHARE = 0.5

    # Mapper "semantic" (panext_d2/data/mappers/semantic.py).
    cfg.INPUT.SEMANTIC = CN()
    # Fixed (height, width) of training and test inputs (§7.3.4: 512x512 for segmentation).
    cfg.INPUT.SEMANTIC.SIZE = (512, 512)
    # Horizontal flip with probability 0.5 at training time, the only augmentation (§7.3.4).
    cfg.INPUT.SEMANTIC.HFLIP = True
    # detectron2's INPUT.CROP (off by default) is applied before the resize when enabled.

    # Image classifier of the two-stage baseline (§7.3: ResNet-50, cross-entropy loss,
    # 256x256 inputs in batches of 32), panext_d2/modeling/encdec/classifier.py.
    cfg.MODEL.IMAGE_CLASSIFIER = CN()
    # Backbone output that is globally average-pooled before the linear layer.
    cfg.MODEL.IMAGE_CLASSIFIER.IN_FEATURE = "res5"
    # "binary": one sigmoid, "has foreground" (SIIM-ACR); "multilabel": one sigmoid per
    # foreground class (COCO BikeCar). Thesis silent on the head: §7.3.3 says "cross-entropy",
    # read as the binary cross-entropy of each sigmoid output.
    cfg.MODEL.IMAGE_CLASSIFIER.MODE = "binary"
    # Foreground classes 1..N ("multilabel" logits); BikeCar 2, SIIM-ACR 1.
    cfg.MODEL.IMAGE_CLASSIFIER.NUM_FOREGROUND_CLASSES = 1
    # Sigmoid score from which an image / class is predicted positive (thesis silent: 0.5).
    cfg.MODEL.IMAGE_CLASSIFIER.THRESHOLD = 0.5
    # (height, width) the classifier resizes its inputs to inside the model; empty = as the
    # mapper gives them. TwoStageSegmentor sets it to MODEL.TWO_STAGE.CLASSIFIER_INPUT_SIZE.
    cfg.MODEL.IMAGE_CLASSIFIER.INPUT_SIZE = ()

    # Two-stage pipeline (TwoStageSegmentor): the config itself describes the segmenter.
    cfg.MODEL.TWO_STAGE = CN()
    # The segmenter's meta-architecture, built from this same config.
    cfg.MODEL.TWO_STAGE.SEGMENTER_ARCHITECTURE = "EncDecSegmentor"
    # (height, width) the classifier resizes images to: its training size (§7.3.4: 256x256).
    cfg.MODEL.TWO_STAGE.CLASSIFIER_INPUT_SIZE = (256, 256)
    # An image is segmented when any classifier sigmoid score is >= this (thesis silent: 0.5).
    cfg.MODEL.TWO_STAGE.THRESHOLD = 0.5

    # Evaluator type to use instead of the test dataset's own evaluator_type when non-empty
    # (for build_evaluator in panext_d2/evaluation/build.py): "image_level" scores an
    # ImageClassifier on the sets whose type is "empty_images"
    # (panext_d2/evaluation/image_level.py).
    cfg.TEST.EVALUATOR_TYPE = ""

    # §7.2 metrics (panext_d2/evaluation/empty_images.py, evaluator_type "empty_images").
    cfg.TEST.EMPTY_IMAGES = CN()
    # How the foreground IoU on non-empty images is reduced. §7.2 does not say; "dataset"
    # (default) accumulates intersections and unions per class over all non-empty images
    # (eq. 5.4 with TP/FP/FN counted over the set, as detectron2's SemSegEvaluator does);
    # "image" averages per-image IoUs (see the evaluator's docstring).
    cfg.TEST.EMPTY_IMAGES.IOU_MODE = "dataset"
    return cfg
