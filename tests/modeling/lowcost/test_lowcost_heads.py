import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_sem_seg_head

from panext_d2.modeling.lowcost import (
    AtrousSegHead,
    FCNSkipHead,
    align_to,
    bilinear_upsample_kernel,
    pixel_softmax_cross_entropy,
    upsample_scores,
)

from tests.modeling.lowcost.variants import VARIANTS, make_lowcost_cfg

COMMON = dict(num_classes=1, ignore_value=255)


def _set_1x1(conv, weight, bias):
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)


def _two_level_head(**kwargs):
    shapes = {"skip": ShapeSpec(channels=1, stride=1), "deep": ShapeSpec(channels=1, stride=2)}
    head = FCNSkipHead(shapes, **{**COMMON, **kwargs})
    _set_1x1(head.score, 1.0, 0.0)
    _set_1x1(head.skip_score["skip"], 2.0, 0.5)
    return head


def test_structure_and_order():
    head = _two_level_head()
    assert head.in_features == ["deep", "skip"] and head.num_skip_steps == 1 and head.stride == 1
    deconv = head.upsample["skip"]
    assert deconv.kernel_size == (4, 4) and deconv.stride == (2, 2) and deconv.bias is None


def test_skip_sum_hand_example():
    """Transposed conv whose only non-zero tap is (1, 1): input cell i lands on output 2i."""
    head = _two_level_head()
    with torch.no_grad():
        head.upsample["skip"].weight.zero_()
        head.upsample["skip"].weight[0, 0, 1, 1] = 1.0
    deep = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    skip = torch.arange(16.0).view(1, 1, 4, 4)
    scores, stride = head.scores({"deep": deep, "skip": skip})
    upsampled = torch.tensor(
        [[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    assert stride == 1
    torch.testing.assert_close(scores[0, 0], upsampled + 2.0 * skip[0, 0] + 0.5)

    # A 3x3 skip map (input not a multiple of the stride): the 4x4 map is cropped top-left.
    scores, _ = head.scores({"deep": deep, "skip": skip[..., :3, :3]})
    torch.testing.assert_close(scores[0, 0], upsampled[:3, :3] + 2.0 * skip[0, 0, :3, :3] + 0.5)


def test_bilinear_initialised_step_hand_example():
    """Bilinear 4x4 kernel [.25, .75, .75, .25]^2, padding 1: a 1-D [a, b] becomes
    [.75a, .75a + .25b, .25a + .75b, .75b], i.e. U @ X @ U^T in 2-D."""
    head = _two_level_head()
    weight = bilinear_upsample_kernel(1)[0, 0]
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(weight, f[:, None] * f[None, :])
    deep = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    u = torch.tensor([[0.75, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 0.75]])
    scores, _ = head.scores({"deep": deep.view(1, 1, 2, 2), "skip": torch.zeros(1, 1, 4, 4)})
    torch.testing.assert_close(scores[0, 0], u @ deep @ u.T + 0.5)


def test_bilinear_kernel_is_per_class():
    w = bilinear_upsample_kernel(3)
    assert w.shape == (3, 3, 4, 4)
    assert w[0, 1].abs().sum() == 0 and w[2, 2].sum() == pytest.approx(4.0)


def test_align_to():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    torch.testing.assert_close(align_to(x, (2, 3)), x[..., :2, :3])
    padded = align_to(x, (4, 5))
    torch.testing.assert_close(padded[..., :3, :4], x)
    torch.testing.assert_close(padded[0, 0, 3, :4], x[0, 0, 2])
    torch.testing.assert_close(padded[0, 0, :3, 4], x[0, 0, :, 3])
    assert align_to(x, (6, 8), "interpolate").shape[-2:] == (6, 8)


def test_upsample_scores_cell_aligned():
    scores = torch.tensor([[1.0, 3.0]]).view(1, 1, 1, 2)
    out = upsample_scores(scores, 2)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1.0, 1.5, 2.5, 3.0]))
    assert upsample_scores(scores, 2, size=(1, 3)).shape[-2:] == (1, 3)


def test_cross_entropy_reductions():
    logits = torch.zeros(2, 4, 2, 3)  # uniform: every labelled pixel costs log 4
    targets = torch.tensor([[[0, 1, 2], [3, 255, 255]], [[1, 1, 1], [255, 255, 255]]])
    labelled = 7  # 4 in the first image, 3 in the second
    total = pixel_softmax_cross_entropy(logits, targets, 255, "sum")
    torch.testing.assert_close(total, torch.tensor(labelled * math.log(4) / 2))
    torch.testing.assert_close(
        pixel_softmax_cross_entropy(logits, targets, 255, "mean"), torch.tensor(math.log(4))
    )
    with pytest.raises(ValueError):
        pixel_softmax_cross_entropy(logits, targets, 255, "none")


def test_rejects_strides_that_do_not_halve():
    shapes = {"a": ShapeSpec(channels=4, stride=32), "b": ShapeSpec(channels=4, stride=8)}
    with pytest.raises(ValueError):
        FCNSkipHead(shapes, num_classes=3)
    with pytest.raises(ValueError):
        AtrousSegHead(shapes, num_classes=3)


def test_zero_initialised_scores_and_inference_softmax():
    head = FCNSkipHead({"x": ShapeSpec(channels=8, stride=4)}, num_classes=5).eval()
    out, losses = head({"x": torch.randn(1, 8, 3, 5)})
    assert losses == {} and out.shape == (1, 5, 12, 20)
    torch.testing.assert_close(out, torch.full_like(out, 0.2))  # softmax of zero scores


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_head_output_size_at_non_multiple_input(variant):
    """Unpadded 100x132 input: the maps are not stride-aligned (MobileNet 4x5 at stride 32
    vs 7x9 at 16), the skip steps crop; the output covers and crops to the input."""
    cfg = make_lowcost_cfg(variant, num_classes=3, SCORE_INIT_STD=0.1)
    backbone = build_backbone(cfg).eval()
    head = build_sem_seg_head(cfg, backbone.output_shape()).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 100, 132))
        full, _ = head(features)
        out, _ = head(features, image_size=(100, 132))
    stride = min(s.stride for s in head_input_shapes(cfg, backbone).values())
    assert full.shape == (1, 3, math.ceil(100 / stride) * stride, math.ceil(132 / stride) * stride)
    assert out.shape == (1, 3, 100, 132)
    torch.testing.assert_close(out, full[..., :100, :132])
    head.train()
    _, losses = head(features, torch.randint(0, 3, (1, 100, 132)))
    assert torch.isfinite(losses["loss_sem_seg"])


def head_input_shapes(cfg, backbone):
    return {k: backbone.output_shape()[k] for k in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES}


def test_missing_in_feature_is_reported(lowcost_cfg):
    cfg = lowcost_cfg("MN-FCN8")
    cfg.MODEL.MOBILENET.OUT_FEATURES = ["conv11", "conv13"]
    backbone = build_backbone(cfg)
    with pytest.raises(ValueError, match="conv5"):
        build_sem_seg_head(cfg, backbone.output_shape())
