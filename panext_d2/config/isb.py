"""Config keys of the SSD-ISB instance segmentation branches (panext_d2/modeling/isb/).

Source: Kolhatkar, *Real-Time Instance and Semantic Segmentation Using Deep Learning*
(2020), §3.1.2-3.1.5, §3.2.1, §5.2, Tables 5.1-5.9; docs/DESIGN.md §2 for the decisions
the thesis leaves open. The detector's keys are MODEL.SSD (panext_d2/config/ssd.py); the
number of mask classes is MODEL.SSD.NUM_CLASSES (one mask per class, §3.1.2).

An SSD-ISB model also sets detectron2 / SSD keys in its YAML:
  MODEL.META_ARCHITECTURE "SSDISB"; MODEL.MASK_ON True;
  MODEL.MOBILENET.OUT_FEATURES ["conv5", "conv11", "conv13"] (the stride-8 map feeds FCN-8);
  INPUT.MASK_FORMAT "polygon" or "bitmask" (the "ssd" mapper keeps instance masks);
  the dataset's evaluator_type "coco_ap50" (AP / AR at IoU 0.5, §5.2).
"""
from detectron2.config import CfgNode as CN

# The ISB shapes of Table 5.1 (Single-Shape branches), (height, width) in cells of the 20x20
# map; also the shapes the coco_isb_shapes builder selects (tools/build_coco_person.py).
ISB_SHAPES = (
    (7, 2), (6, 3), (6, 2), (5, 3), (5, 2), (4, 3),
    (4, 2), (3, 3), (3, 2), (3, 1), (2, 2), (2, 1),
)


def add_isb_config(cfg):
    """MODEL.ISB."""
    c = cfg.MODEL.ISB = CN()
    # Variant (§3.1.4, §3.1.5, §5.2): "single_branch", "single_shape", "single_shape_plus",
    # or "multi_shape" (the most accurate, Table 5.4). MS-NewShapes / MS-SmallShapes are
    # "multi_shape" with other MULTI_SHAPE_THRESHOLDS.
    c.VARIANT = "multi_shape"
    # Backbone maps, stride 32 first (crops, §3.1.2), then the FCN-16 / FCN-8 skip maps of
    # stride 16 / 8 (Fig. 3.4). MobileNet-v1 names (panext_d2/modeling/backbone/mobilenet_v1.py).
    c.IN_FEATURES = ["conv13", "conv11", "conv5"]
    # Skip steps of each branch: 2 = FCN-8 (default, §3.2.1), 1 = FCN-16 (Tables 5.6-5.9),
    # 0 = FCN-32 (the "zero" option of §3.1.2).
    c.NUM_SKIPS = 2
    # Depth of the 3x3 depthwise-separable conv (§3.2.1: 128) and of the transposed / skip
    # convs (§3.2.1: 32). They do not scale with MODEL.MOBILENET.DEPTH_MULTIPLIER (the crop
    # depths do): Tables 5.7 / 5.9 imply 205 857 parameters per branch at 0.75, which only
    # fixed 128 / 32 reproduce.
    c.CONV_DIM = 128
    c.DECONV_DIM = 32
    # After the separable conv and each skip sum; not given by the thesis: ReLU, as after
    # every conv of Mask R-CNN's mask head ("" = linear).
    c.ACTIVATION = "relu"

    # Single-Branch (§3.1.4, §5.2.1): every box is cropped at twice this shape, resized and
    # 2x2 max-pooled (Mask R-CNN's crop) to a 10x10 branch input.
    c.SINGLE_BRANCH_SHAPE = [10, 10]
    c.SINGLE_BRANCH_POOL = True
    # Whether that 2x crop + max-pool also applies to the skip crops (stride 16 / 8). §3.1.4
    # describes it for "the instance segmentation inputs", i.e. the branch input; the thesis
    # is silent on the skip crops. False (default): they are resized bilinearly straight to
    # 2x / 4x the branch shape, which lets their 1x1 skip convs run before the crop (see
    # panext_d2/modeling/isb/head.py) and avoids cropping 100 boxes of 256 channels at 80x80
    # at inference. Parameter counts are the same either way.
    c.POOL_SKIP_CROPS = False
    # Single-Shape(+) exact branch shapes, (h, w) cells of the 20x20 map: Table 5.1.
    c.SINGLE_SHAPES = [list(shape) for shape in ISB_SHAPES]
    # Single-Shape+ resize branch for the boxes of other shapes (§5.2.1: 14x14).
    c.REMAINDER_SHAPE = [14, 14]
    # Multi-Shape size thresholds, largest first (§5.2.1). Each box is resized down to the
    # first one that fits inside it. MS-NewShapes: [[15, 15], [10, 10], [8, 8], [6, 6],
    # [4, 4], [2, 2], [1, 1]]; MS-SmallShapes: [[10, 10], [8, 6], [6, 4], [5, 3], [4, 2],
    # [2, 2], [2, 1], [1, 1]] (§5.2.4).
    c.MULTI_SHAPE_THRESHOLDS = [
        [15, 10], [9, 4], [7, 3], [6, 3], [5, 2], [4, 2], [3, 2], [2, 2], [2, 1], [1, 1],
    ]
    # Boxes per image: 100 in the Single-Branch, 30 in each branch of the multi-branch
    # variants (§3.2.1 "Number of Boxes per Branch").
    c.MAX_BOXES_SINGLE_BRANCH = 100
    c.MAX_BOXES_PER_BRANCH = 30
    # Zero-pad each branch to images x its box cap, as the thesis' TensorFlow graph did
    # (§3.1.5 "Implementation" step 2). Only compute changes: False by default, True to
    # reproduce its cost in benchmarks.
    c.PAD_TO_MAX_BOXES = False
    # Boxes cropped and run through a branch together. Results do not depend on it; small
    # chunks keep the crops (boxes x 1024 channels x 10 x 10 for the Single-Branch) and the
    # branch activations small enough for the allocator to reuse instead of paging in fresh
    # memory for every image, which dominates the CPU cost of 100 boxes.
    c.BOXES_PER_CHUNK = 16

    # Mask-loss weights (§3.2.1 "Loss Weights"): 30 for the Single-Branch, 150 for every
    # multi-branch variant; box losses keep MODEL.SSD.*_LOSS_WEIGHT (1.0).
    c.MASK_LOSS_WEIGHT_SINGLE = 30.0
    c.MASK_LOSS_WEIGHT_MULTI = 150.0
    # Stop the gradient at each crop (§3.2.1 "Stop Gradient"): features learn from detection.
    c.STOP_GRADIENT = True
    # Mask binarisation threshold on the *logits*. The thesis says "a threshold of 0.0" for
    # sigmoid masks (§3.2.1), which on probabilities would mark every pixel; our reading is
    # logit 0, i.e. probability 0.5 (docs/DESIGN.md §2).
    c.MASK_THRESHOLD = 0.0
    # At inference, keep detections that no branch segments (Single-Shape's other shapes,
    # boxes over a branch cap) with an empty mask. False: they are pruned, as in the
    # thesis' implementation ("the available bounding boxes are pruned", §3.1.5).
    c.KEEP_UNMASKED_TEST = False
    return cfg
