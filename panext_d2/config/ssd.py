"""Config keys of the SSD detector (panext_d2/modeling/ssd/); its backbone's are in
``config/mobilenet.py``.

Sources: Kolhatkar, *Real-Time Instance and Semantic Segmentation Using Deep Learning*
(2020): §3.1.1 (SSD), §3.2.1 (training details).
Where the thesis is silent it used the TensorFlow Object Detection API's SSD-MobileNet-v1
(§3.2), so the defaults marked *(TF OD API)* come from that API's
``samples/configs/ssd_mobilenet_v1_coco.config`` and its builders.

Reused detectron2 keys for an SSD model:
  MODEL.META_ARCHITECTURE "SSD"; MODEL.BACKBONE.NAME "build_mobilenet_v1_backbone";
  MODEL.PIXEL_MEAN [127.5, 127.5, 127.5], MODEL.PIXEL_STD [127.5, 127.5, 127.5] with
  INPUT.FORMAT "RGB" (TF OD API's MobileNet preprocessing, (2 / 255) * x - 1, i.e. [-1, 1]);
  TEST.DETECTIONS_PER_IMAGE 100 (§3.1.1 "100 detections"; TF OD API max_total_detections);
  INPUT.DATASET_MAPPER_NAME "ssd" (fixed-size resize mapper); INPUT.RANDOM_FLIP
  (TF OD API data_augmentation_options: random_horizontal_flip).
These are global detectron2 keys, so they are set by the SSD YAML configs
(configs/ssd/Base-SSD-MobileNet-v1.yaml), not here.
"""

from detectron2.config import CfgNode as CN

from .mobilenet import add_mobilenet_config


def add_ssd_config(cfg):
    """MODEL.SSD, INPUT.SSD_SIZE, and MODEL.MOBILENET (SSD's backbone)."""
    add_mobilenet_config(cfg)
    # Fixed square input side of the "ssd" mapper: 640 (Kolhatkar (2020) §3.2.1 "Input Size"; a
    # multiple of 32 so no padding is needed). 300 is SSD's usual size (§3.1.2).
    cfg.INPUT.SSD_SIZE = 640

    s = cfg.MODEL.SSD = CN()
    # Foreground classes; the background is class index 0 of the classifier (TF OD API and
    # original SSD convention). 80 = COCO; 1 for COCO person (Kolhatkar (2020) ch. 5).
    s.NUM_CLASSES = 80
    # Backbone maps fed to the predictor before the extra layers: the last two MobileNet
    # stages (Kolhatkar (2020) §3.1.1, Fig. 3.1; TF OD API ssd_mobilenet_v1 feature extractor).
    s.IN_FEATURES = ["conv11", "conv13"]
    # Extra layers after the backbone, each a 1x1 conv to depth/2 then a 3x3 stride-2 conv
    # to depth, both BN + activation (TF OD API ssd_mobilenet_v1: layer_depth
    # [-1, -1, 512, 256, 256, 128], insert_1x1_conv). Depths scale with
    # MODEL.MOBILENET.DEPTH_MULTIPLIER, norm / activation / BN settings follow
    # MODEL.MOBILENET.
    s.EXTRA_DEPTHS = [512, 256, 256, 128]
    # Smallest extra-layer depth after the multiplier: TF OD API feature extractor min_depth.
    s.EXTRA_MIN_DEPTH = 16
    # Kernel of the class / box predictor convs (with bias, no BN): 1 in the TF OD API
    # ssd_mobilenet_v1_coco box_predictor (kernel_size: 1), which reproduces Kolhatkar's (2020) SSD
    # parameter count exactly (5 543 558 for one class, docs/DESIGN.md §2); the SSD paper uses 3.
    s.PREDICTOR_KERNEL_SIZE = 1

    # Default boxes (Kolhatkar (2020) §3.1.1, eq. 3.1): s_k = s_min + (s_max - s_min)(k - 1)/(m - 1)
    # over the m feature maps.
    s.MIN_SCALE = 0.2  # §3.1.1 (TF OD API: 0.2)
    s.MAX_SCALE = 0.9  # §3.1.1 (TF OD API ssd_mobilenet_v1_coco uses 0.95)
    # Width-to-height ratios of the default boxes at each cell (§3.1.1).
    s.BOX_RATIOS = [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]
    # One more ratio-1 box of scale sqrt(s_k s_(k+1)) per cell, s_(m+1) = 1 (SSD paper; TF
    # OD API interpolated_scale_aspect_ratio: 1.0).
    s.INTERPOLATED_SCALE = True
    # TF OD API reduce_boxes_in_lowest_layer (default true): the first map gets only three
    # boxes, (0.1, ratio 1), (s_1, ratio 2), (s_1, ratio 1/2). Needed for Kolhatkar's (2020) count.
    s.REDUCE_BOXES_IN_LOWEST_LAYER = True
    # Clip default boxes to the image: the TF OD API does not (the SSD paper's Caffe code
    # does).
    s.CLIP_DEFAULT_BOXES = False

    # Matching (§3.1.1): every GT gets its best-IoU default box, and every default box with
    # IoU > this threshold is matched (TF OD API argmax_matcher 0.5 / 0.5).
    s.IOU_THRESHOLD = 0.5
    # Box coder scale factors (dx, dy, dw, dh): TF OD API faster_rcnn_box_coder 10, 10, 5, 5.
    s.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

    # Loss (§3.1.1, §3.2.1): smooth-L1 on encoded offsets of matched boxes + softmax
    # cross-entropy, weighted 1.0 / 1.0 (§3.2.1 "Loss Weights"; TF OD API
    # localization_weight / classification_weight), normalised by the number of matches in
    # the batch, at least 1 (TF OD API normalize_loss_by_num_matches).
    s.LOC_LOSS_WEIGHT = 1.0
    s.CLS_LOSS_WEIGHT = 1.0
    # Smooth-L1 transition point: TF OD API weighted_smooth_l1 (Huber delta 1.0).
    s.SMOOTH_L1_BETA = 1.0
    # Hard negative mining by classification loss: at most this many negatives per positive
    # (TF OD API hard_example_miner max_negatives_per_positive 3; SSD paper 3:1).
    s.NEG_POS_RATIO = 3.0
    # At least this many negatives per image, so that images without objects still train the
    # classifier. The TF OD API ssd_mobilenet_v1_coco config sets min_negatives_per_image 0;
    # 3 is our choice (the "ssd" mapper keeps images without objects when
    # DATALOADER.FILTER_EMPTY_ANNOTATIONS is False).
    s.MIN_NEGATIVES = 3

    # Inference as the TF OD API's batch_non_max_suppression: softmax scores, every box above
    # score_threshold 1e-8 to per-class NMS at iou_threshold 0.6, the best
    # max_detections_per_class 100 survivors of each class, then the best
    # TEST.DETECTIONS_PER_IMAGE (max_total_detections 100).
    s.SCORE_THRESH_TEST = 1e-8
    s.NMS_THRESH_TEST = 0.6
    s.DETECTIONS_PER_CLASS_TEST = 100
    # Optional cap on the candidates per class *before* NMS, which the TF OD API does not
    # have: 0 = none (the API). A cap changes the results whenever it binds (fewer, and
    # different, detections); one at or above the number of default boxes never binds.
    s.TOPK_CANDIDATES_TEST = 0
    # Inference runs a copy of the backbone and extra layers with every BatchNorm folded into
    # the convolution before it (same outputs up to float rounding, one pass over each
    # feature map less); the copy is rebuilt after every train() / eval() switch, so training
    # and checkpoints are unaffected. False: inference runs the trained modules as they are.
    s.FOLD_BN_TEST = False
    return cfg
