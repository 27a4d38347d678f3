"""Config keys of the PaNeXt meta-architecture (Debucean (2022) ch. 3; docs/DESIGN.md §1).

Every default names its source: a thesis section, or *PanopticFCN* (Li et al.,
dvlab-research/PanopticFCN, config ``PanopticFCN-R50-400-3x-FAST``) where the thesis is silent.
"""

from detectron2.config import CfgNode as CN


def add_panext_head_config(cfg):
    cfg.MODEL.PANEXT = CN()
    P = cfg.MODEL.PANEXT
    # COCO panoptic: 80 things + 53 stuff (thesis §3.2). Class indices of the heads are
    # ranks among the dataset's thing / stuff contiguous ids (MetadataCatalog).
    P.NUM_THING_CLASSES = 80
    P.NUM_STUFF_CLASSES = 53
    # "Top features" P3-P7 feed the kernel generator, "base features" P2-P5 the
    # high-resolution processor (thesis §3.1.1, its levels 2-6 and 1-4).
    P.KERNEL_IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    P.HR_IN_FEATURES = ["p2", "p3", "p4", "p5"]
    # Channels of each dynamic 1x1 kernel = channels of the HR map (PanopticFCN: 64).
    P.KERNEL_DIM = 64

    # Kernel head (thesis §3.1.2): coordinates + conv stack with GroupNorm + ReLU, shared
    # across levels (PanopticFCN); 3 convs of 256 channels (PanopticFCN).
    P.KERNEL_HEAD = CN()
    P.KERNEL_HEAD.NUM_CONVS = 3  # PanopticFCN
    P.KERNEL_HEAD.CONVS_DIM = 256  # PanopticFCN
    P.KERNEL_HEAD.COORD = True  # thesis §3.1.2 (two relative-coordinate channels)
    P.KERNEL_HEAD.NORM = "GN"  # thesis §3.1.2

    # Position head (thesis §3.1.2): deformable conv stack -> thing centers + stuff regions.
    P.POSITION_HEAD = CN()
    P.POSITION_HEAD.NUM_CONVS = 3  # PanopticFCN
    P.POSITION_HEAD.CONVS_DIM = 256  # PanopticFCN
    P.POSITION_HEAD.DEFORM = True  # thesis §3.1.2 (torchvision DeformConv2d, zero-init offsets)
    # Deformable conv operator (panext_d2/layers/deform_conv.py): "torchvision" (its C++/CUDA
    # kernel), "fast" (grid_sample + matmul, same result, ~2.5x faster on CPU) or "auto" (fast on
    # CPU, torchvision on CUDA). Parameters and checkpoints are the same for all three.
    P.POSITION_HEAD.DEFORM_IMPL = "auto"
    P.POSITION_HEAD.NORM = "GN"  # PanopticFCN
    # Prior of the center and region outputs: bias = -log((1-p)/p). PanopticFCN sets the bias
    # to -2.19 (POSITION_HEAD.THING.BIAS_VALUE) on both, i.e. p = 0.1 (RetinaNet uses 0.01).
    P.POSITION_HEAD.PRIOR_PROB = 0.1

    # High-resolution feature processor (thesis §3.1.3): semantic-FPN merge to stride 4
    # (Kirillov et al.), then a conv stack with SmeLU.
    P.HR = CN()
    # Per-level conv width of the merge: 256 reproduces docs/DESIGN.md §1's size cross-check
    # (PanopticFCN-R50 36.8 M parameters; 128, Panoptic FPN's width, would give 33.8 M).
    P.HR.FPN_DIM = 256
    P.HR.NUM_CONVS = 3  # thesis §3.1.3: 3 (PaNeXt), 5 (PaNeXt-e)
    P.HR.ACTIVATION = "smelu"  # thesis §3.1.3: "smelu"; "relu" gives the PanopticFCN baseline
    P.HR.SMELU_BETA = 2.0  # docs/DESIGN.md §1: default of the public SmeLU implementation
    P.HR.COORD = True  # coordinate channels before the stack (PanopticFCN)
    # Norm of the merge convs: PanopticFCN's SEMANTIC_FPN.NORM "GN".
    P.HR.MERGE_NORM = "GN"
    # Norm of the conv stack: none, as PanopticFCN's FEATURE_ENCODER.NORM "" (the thesis names
    # only the convs and SmeLU, §3.1.3). The from-scratch quick configs use "GN".
    P.HR.NORM = ""

    # Stuff kernels. "panopticfcn": as its code (k = 1, "all same-category points are treated
    # equally", thesis §3.3.3): per level, the kernels of the region averaged (sum / cells of
    # the level), one kernel and Dice term per level in training (ground-truth regions), the
    # mean over levels at inference (regions of score > STUFF_SCORE_THRESH).
    # "score_weighted": one kernel per region, weighted by the predicted scores over all
    # levels (the from-scratch quick configs).
    P.STUFF_KERNELS = "panopticfcn"

    # Training targets.
    P.TARGETS = CN()
    # Level assignment of things by sqrt(box area) in input pixels, one (low, high) range
    # per KERNEL_IN_FEATURES level; ranges overlap, so a thing may use two levels (PanopticFCN).
    P.TARGETS.THING_SCALE_RANGES = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))
    P.TARGETS.GAUSSIAN_MIN_OVERLAP = 0.7  # CenterNet radius rule (PanopticFCN)
    # k top-scoring positions per thing for the weighted Dice (thesis §3.3.3 gives none;
    # PanopticFCN 400-px config: 3, its other configs 7). Stuff uses k = 1 (thesis §3.3.3).
    P.TARGETS.THING_POS_NUM = 3
    P.TARGETS.IGNORE_VALUE = 255  # value of non-stuff pixels in the mapper's "sem_seg"

    # Losses (thesis §3.3.3): L = POSITION_WEIGHT * L_pos + SEGMENT_WEIGHT * L_seg.
    P.LOSS = CN()
    P.LOSS.POSITION_WEIGHT = 1.0  # thesis eq. 3.3.6
    P.LOSS.SEGMENT_WEIGHT = 3.0  # thesis eq. 3.3.6
    P.LOSS.FOCAL_ALPHA = 0.25  # PanopticFCN
    P.LOSS.FOCAL_GAMMA = 2.0  # thesis §3.3.3
    # N_th of eq. 3.3.1: "num_thing_classes" (thesis' words; averaged over the batch) or
    # "num_instances" (PanopticFCN: thing instances in the batch).
    P.LOSS.THING_NORM = "num_thing_classes"
    # Dice of the segmentation loss: "thesis" = eq. 2.6.12, 1 - (1 + 2 sum yp)/(1 + sum y + sum p);
    # "panopticfcn" = PanopticFCN's code, 1 - 2 sum yp / (sum y^2 + sum p^2).
    P.LOSS.DICE_FORM = "thesis"

    # Inference (PanopticFCN FAST config unless noted).
    P.INFERENCE = CN()
    P.INFERENCE.CENTER_NMS_KERNEL = 3  # max-pool window of the center-heatmap NMS
    P.INFERENCE.THING_SCORE_THRESH = 0.2  # PanopticFCN-400-FAST
    P.INFERENCE.STUFF_SCORE_THRESH = 0.1  # PanopticFCN-400-FAST
    P.INFERENCE.TOP_K_THINGS = 100  # thesis §3.1.2
    P.INFERENCE.SIMILARITY_THRESH = 0.9  # kernel fusion, cosine similarity
    P.INFERENCE.MASK_THRESH = 0.4  # sigmoid mask binarisation
    # Multiply thing scores by mask "maskness" (mean probability inside the binary mask),
    # the SOLOv2 rescoring used by PanopticFCN.
    P.INFERENCE.MASK_RESCORE = True
    P.INFERENCE.COMBINE_SCORE_THRESH = 0.2  # things kept in the panoptic merge
    P.INFERENCE.OVERLAP_THRESH = 0.5  # a thing is dropped if more of it than this is taken
    # Minimum stuff area in output pixels (PanopticFCN: 4096 at COCO resolution; lower it
    # for small images).
    P.INFERENCE.STUFF_AREA_LIMIT = 4096
    P.INFERENCE.PANOPTIC_ON = True
    P.INFERENCE.INSTANCES_ON = True  # detectron2 "instances" output for COCOEvaluator
    P.INFERENCE.SEM_SEG_ON = True  # per-class scores for SemSegEvaluator
    return cfg
