"""The grid_sample deformable convolution equals torchvision's (values and gradients) and is
interchangeable with torchvision.ops.DeformConv2d."""

import pytest
import torch
import torchvision
from detectron2.layers import ShapeSpec

from panext_d2 import get_panext_cfg
from panext_d2.layers.deform_conv import DeformConv2d, deform_conv2d
from panext_d2.modeling.panext.heads import PositionHead


def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


CASES = {
    # stride, padding, dilation, weight groups, offset groups, modulated, bias
    "head": (1, 1, 1, 1, 1, False, True),  # the position head's 3x3 layer
    "head_no_bias": (1, 1, 1, 1, 1, False, False),
    "strided": (2, 1, 1, 1, 1, False, True),
    "dilated": (1, 2, 2, 1, 1, False, True),
    "groups": (1, 1, 1, 2, 2, False, True),
    "modulated": (2, 0, 1, 1, 2, True, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_torchvision_forward_and_gradients(case):
    stride, padding, dilation, groups, offset_groups, modulated, with_bias = CASES[case]
    g = torch.Generator().manual_seed(0)
    n, c, o, h, w, k = 2, 4, 6, 7, 9, 3
    ho, wo = out_size(h, k, stride, padding, dilation), out_size(w, k, stride, padding, dilation)
    f64 = dict(dtype=torch.float64, generator=g)
    x = torch.randn(n, c, h, w, **f64)
    weight = torch.randn(o, c // groups, k, k, **f64)
    bias = torch.randn(o, **f64) if with_bias else None
    # Offsets up to several pixels: many taps sample partly or entirely outside the image.
    offset = 4 * torch.randn(n, 2 * offset_groups * k * k, ho, wo, **f64)
    mask = torch.rand(n, offset_groups * k * k, ho, wo, **f64) if modulated else None
    inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]
    for t in inputs:
        t.requires_grad_(True)

    args = dict(stride=stride, padding=padding, dilation=dilation, mask=mask)
    ref = torchvision.ops.deform_conv2d(x, offset, weight, bias, **args)
    out = deform_conv2d(x, offset, weight, bias, **args)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)

    grad_out = torch.randn(ref.shape, **f64)
    ref_grads = torch.autograd.grad(ref, inputs, grad_out)
    grads = torch.autograd.grad(out, inputs, grad_out)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_samples_outside_the_image_read_zeros():
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    weight = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    offset = torch.full((1, 18, 4, 4), 10.0, dtype=torch.float64)  # every tap far outside
    assert deform_conv2d(x, offset, weight, padding=1).abs().max() == 0


def test_module_is_interchangeable_with_torchvision():
    torch.manual_seed(0)
    ours = DeformConv2d(8, 5, 3, padding=1, impl="fast")
    theirs = torchvision.ops.DeformConv2d(8, 5, 3, padding=1)
    assert isinstance(ours, torchvision.ops.DeformConv2d)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    x, offset = torch.randn(1, 8, 6, 7), torch.randn(1, 18, 6, 7)
    torch.testing.assert_close(ours(x, offset), theirs(x, offset), rtol=1e-4, atol=1e-4)
    assert "impl='fast'" in repr(ours)


def test_impl_selection():
    x = torch.zeros(1, 2, 3, 3)
    assert DeformConv2d(2, 2, 3, impl="auto").uses_fast_path(x)
    assert DeformConv2d(2, 2, 3, impl="fast").uses_fast_path(x)
    assert not DeformConv2d(2, 2, 3, impl="torchvision").uses_fast_path(x)
    with pytest.raises(ValueError):
        DeformConv2d(2, 2, 3, impl="cuda")


def test_channels_last_input_keeps_its_layout():
    torch.manual_seed(0)
    layer = DeformConv2d(4, 4, 3, padding=1)
    x, offset = torch.randn(1, 4, 5, 6), torch.randn(1, 18, 5, 6)
    expected = layer(x, offset)
    out = layer(
        x.contiguous(memory_format=torch.channels_last),
        offset.contiguous(memory_format=torch.channels_last),
    )
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("impl", ["auto", "torchvision", "fast"])
def test_position_head_takes_the_impl_from_the_config(impl):
    cfg = get_panext_cfg()
    P = cfg.MODEL.PANEXT
    P.POSITION_HEAD.DEFORM_IMPL = impl
    P.POSITION_HEAD.CONVS_DIM = 8
    P.NUM_THING_CLASSES, P.NUM_STUFF_CLASSES = 3, 2
    head = PositionHead(cfg, [ShapeSpec(channels=8, stride=8)])
    layers = [m for m in head.modules() if isinstance(m, DeformConv2d)]
    assert len(layers) == P.POSITION_HEAD.NUM_CONVS
    assert all(m.impl == impl for m in layers)
    things, stuff = head([torch.randn(1, 8, 5, 6)])
    assert things[0].shape == (1, 3, 5, 6) and stuff[0].shape == (1, 2, 5, 6)
