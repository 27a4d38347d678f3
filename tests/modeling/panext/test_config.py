"""Defaults of MODEL.PANEXT (Debucean (2022) ch. 3; PanopticFCN where the thesis is silent)."""


def test_panext_defaults(cfg):
    P = cfg.MODEL.PANEXT
    assert (P.NUM_THING_CLASSES, P.NUM_STUFF_CLASSES, P.KERNEL_DIM) == (80, 53, 64)
    assert P.KERNEL_IN_FEATURES == ["p3", "p4", "p5", "p6", "p7"]
    assert P.HR_IN_FEATURES == ["p2", "p3", "p4", "p5"]
    assert (P.HR.NUM_CONVS, P.HR.ACTIVATION, P.HR.SMELU_BETA) == (3, "smelu", 2.0)
    assert P.POSITION_HEAD.DEFORM and P.TARGETS.THING_POS_NUM == 3
    assert (P.LOSS.POSITION_WEIGHT, P.LOSS.SEGMENT_WEIGHT) == (1.0, 3.0)
    assert (P.LOSS.FOCAL_ALPHA, P.LOSS.FOCAL_GAMMA) == (0.25, 2.0)
    assert (P.LOSS.THING_NORM, P.LOSS.DICE_FORM) == ("num_thing_classes", "thesis")
    I = P.INFERENCE
    assert (I.THING_SCORE_THRESH, I.STUFF_SCORE_THRESH, I.TOP_K_THINGS) == (0.2, 0.1, 100)
    assert (I.SIMILARITY_THRESH, I.MASK_THRESH, I.OVERLAP_THRESH, I.STUFF_AREA_LIMIT) == (
        0.9,
        0.4,
        0.5,
        4096,
    )
