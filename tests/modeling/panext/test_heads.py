"""Shapes and construction of the kernel head, position head and HR processor."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.structures import ImageList
from torch import nn
from torchvision.ops import DeformConv2d

from panext_d2.layers.smelu import SmeLU
from panext_d2.layers.norm import group_norm_groups
from panext_d2.modeling.panext.heads import DeformConv, KernelHead, PositionHead
from panext_d2.modeling.panext.hr_processor import HRProcessor


def test_head_shapes_on_levels_of_odd_sizes(tiny_cfg):
    shapes = [ShapeSpec(channels=8, stride=8 * 2**i) for i in range(5)]
    levels = [torch.randn(2, 8, h, w) for h, w in [(9, 13), (5, 7), (3, 4), (2, 2), (1, 1)]]
    kernels = KernelHead(tiny_cfg, shapes)(levels)
    things, stuff = PositionHead(tiny_cfg, shapes)(levels)
    for x, k, t, s in zip(levels, kernels, things, stuff):
        assert k.shape == (2, 8) + x.shape[-2:]  # KERNEL_DIM
        assert t.shape == (2, 3) + x.shape[-2:] and s.shape == (2, 2) + x.shape[-2:]


def test_backbone_and_hr_shapes_at_a_non_multiple_of_32_input(tiny_cfg):
    backbone = build_backbone(tiny_cfg)
    images = ImageList.from_tensors([torch.randn(3, 72, 100)], backbone.size_divisibility)
    features = backbone(images.tensor)
    hr = HRProcessor(tiny_cfg, backbone.output_shape())(features)
    padded = images.tensor.shape[-2:]
    assert hr.shape == (1, 8, padded[0] // 4, padded[1] // 4)
    for name, stride in zip(["p3", "p4", "p5", "p6", "p7"], [8, 16, 32, 64, 128]):
        assert features[name].shape[-2:] == (-(-padded[0] // stride), -(-padded[1] // stride))


def test_position_head_starts_at_the_prior(tiny_cfg):
    """PanopticFCN's bias -2.19 (p = 0.1) on the center and region outputs."""
    assert tiny_cfg.MODEL.PANEXT.POSITION_HEAD.PRIOR_PROB == 0.1
    head = PositionHead(tiny_cfg, [ShapeSpec(channels=8, stride=8)])
    things, stuff = head([torch.randn(1, 8, 6, 6)])
    assert torch.allclose(things[0].sigmoid().mean(), torch.tensor(0.1), atol=2e-2)
    assert torch.allclose(stuff[0].sigmoid().mean(), torch.tensor(0.1), atol=2e-2)
    assert sum(isinstance(m, DeformConv2d) for m in head.modules()) == 2  # NUM_CONVS


def test_deform_conv_starts_as_a_plain_conv_and_learns_offsets():
    torch.manual_seed(0)
    layer = DeformConv(4, 6)
    x = torch.randn(1, 4, 7, 9, requires_grad=True)
    plain = nn.functional.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)
    out = layer(x)
    assert torch.allclose(out, plain, atol=1e-5)
    out.square().sum().backward()
    assert layer.offset.weight.grad.abs().sum() > 0


def test_deform_off_uses_plain_convs(tiny_cfg):
    tiny_cfg.MODEL.PANEXT.POSITION_HEAD.DEFORM = False
    head = PositionHead(tiny_cfg, [ShapeSpec(channels=8, stride=8)])
    assert not any(isinstance(m, DeformConv2d) for m in head.modules())


@pytest.mark.parametrize(
    "activation,num_convs,cls", [("smelu", 3, SmeLU), ("smelu", 5, SmeLU), ("relu", 3, nn.ReLU)]
)
def test_hr_stack_activation_and_depth(tiny_cfg, activation, num_convs, cls):
    tiny_cfg.MODEL.PANEXT.HR.ACTIVATION = activation
    tiny_cfg.MODEL.PANEXT.HR.NUM_CONVS = num_convs
    tiny_cfg.MODEL.PANEXT.HR.SMELU_BETA = 1.5
    shapes = {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 6)}
    hr = HRProcessor(tiny_cfg, shapes)
    acts = [m for m in hr.convs if isinstance(m, (SmeLU, nn.ReLU))]
    assert len(acts) == num_convs and all(type(a) is cls for a in acts)
    if cls is SmeLU:
        assert acts[0].beta == 1.5
    # The merge is semantic FPN: 1, 1, 2, 3 conv stages for strides 4, 8, 16, 32.
    convs = [sum(isinstance(m, nn.Conv2d) for m in head.modules()) for head in hr.merge.scale_heads]
    assert convs == [1, 1, 2, 3]


def test_hr_activation_is_checked(tiny_cfg):
    tiny_cfg.MODEL.PANEXT.HR.ACTIVATION = "gelu"
    with pytest.raises(ValueError):
        HRProcessor(tiny_cfg, {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 6)})


def test_group_norm_groups_fit_narrow_widths():
    assert (
        group_norm_groups(256) == 32 and group_norm_groups(8) == 4 and group_norm_groups(24) == 12
    )
    assert group_norm_groups(40) == 20 and group_norm_groups(1) == 1


def test_hr_stack_follows_panopticfcn_feature_encoder(tiny_cfg):
    """GroupNorm in the semantic-FPN merge, none in the conv stack (PanopticFCN's
    SEMANTIC_FPN.NORM "GN", FEATURE_ENCODER.NORM ""), whose convs keep PyTorch's init so
    that activations do not vanish through the stack."""
    from panext_d2.modeling.panext.hr_processor import HRProcessor

    shapes = {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 6)}
    hr = HRProcessor(tiny_cfg, {k: shapes[k] for k in tiny_cfg.MODEL.PANEXT.HR_IN_FEATURES})
    assert any(isinstance(m, nn.GroupNorm) for m in hr.merge.modules())
    assert not any(isinstance(m, nn.GroupNorm) for m in hr.convs.modules())
    torch.manual_seed(0)
    out = hr({k: torch.randn(1, 8, 64 // 2**i, 64 // 2**i) for i, k in enumerate(shapes)})
    assert out.std() > 0.05  # N(0, 0.01) weights without a norm gave ~1e-4
