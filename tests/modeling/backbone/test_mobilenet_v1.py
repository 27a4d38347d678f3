import pytest
import torch

from panext_d2.modeling.backbone.mobilenet_v1 import LAYER_NAMES, MobileNetV1

# Table 2.5 of Kolhatkar (2020), restated: (stride, pointwise depth) of conv0 .. conv13.
TABLE_2_5 = (
    [(2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)]
    + [(1, 512)] * 5
    + [
        (2, 1024),
        (1, 1024),
    ]
)


def _expected_counts(multiplier):
    """(trainable, BN channels) of conv0..conv13 from Table 2.5 and eq. 2.18."""
    depths = [max(int(d * multiplier), 8) for _, d in TABLE_2_5]
    weights = 3 * 3 * 3 * depths[0]
    bn = depths[0]
    for d_in, d_out in zip(depths[:-1], depths[1:]):
        weights += 3 * 3 * d_in + d_in * d_out  # eq. 2.18, no biases
        bn += d_in + d_out
    return weights + 2 * bn, bn


def _counts(model):
    trainable = sum(p.numel() for p in model.parameters())
    running = sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )
    return trainable, trainable + running


@pytest.mark.parametrize("multiplier", [1.0, 0.75, 0.5])
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_output_shapes(multiplier, output_stride):
    model = MobileNetV1(
        depth_multiplier=multiplier,
        out_features=["conv5", "conv11", "conv13"],
        output_stride=output_stride,
    ).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 96))
    nominal = {"conv5": 8, "conv11": 16, "conv13": 32}
    depth = {"conv5": 256, "conv11": 512, "conv13": 1024}
    shapes = model.output_shape()
    for name, stride in nominal.items():
        stride = min(stride, output_stride)
        channels = int(depth[name] * multiplier)
        assert out[name].shape == (1, channels, 64 // stride, 96 // stride), name
        assert shapes[name].stride == stride and shapes[name].channels == channels


def test_atrous_rates_follow_tf_slim():
    model = MobileNetV1(out_features=["conv13"], output_stride=8, last_atrous_rate=3)
    rates = [model.dilations[n] for n in LAYER_NAMES]
    # conv6 keeps rate 1 with stride 1; the following layers 2, conv12 keeps 2, conv13 4 x 3.
    assert rates == [1] * 7 + [2] * 6 + [12]
    assert model.conv6.depthwise.stride == (1, 1) and model.conv12.depthwise.stride == (1, 1)
    assert model.conv13.depthwise.dilation == (12, 12) and model.conv13.depthwise.padding == (
        12,
        12,
    )
    plain = MobileNetV1(out_features=["conv13"], last_atrous_rate=5)
    assert plain.conv13.depthwise.dilation == (5, 5) and plain.conv12.depthwise.stride == (2, 2)


@pytest.mark.parametrize("multiplier", [1.0, 0.75, 0.5])
def test_parameter_counts(multiplier):
    model = MobileNetV1(depth_multiplier=multiplier, out_features=["conv13"])
    trainable, tf_style = _counts(model)
    expected_trainable, bn_channels = _expected_counts(multiplier)
    assert trainable == expected_trainable
    assert tf_style == trainable + 2 * bn_channels
    if multiplier == 1.0:
        # Table 2.6: 4.2 M with the 1024 x 1000 classifier (1.025 M) -> ~3.2 M of features.
        assert trainable == 3_206_976 and tf_style == 3_228_864


def test_only_needed_layers_built_and_activation_key():
    model = MobileNetV1(out_features=["conv5"], activation="relu")
    assert not hasattr(model, "conv6")
    assert isinstance(model.conv3.pointwise.activation, torch.nn.ReLU)
    assert isinstance(
        MobileNetV1(out_features=["conv1"]).conv1.depthwise.activation, torch.nn.ReLU6
    )
    with pytest.raises(ValueError):
        MobileNetV1(out_features=["res5"])


def test_freeze_at():
    from detectron2.layers import FrozenBatchNorm2d

    model = MobileNetV1(out_features=["conv5"], freeze_at=3, bn_eps=1e-3)
    assert all(
        not p.requires_grad
        for n in ("conv0", "conv1", "conv2")
        for p in getattr(model, n).parameters()
    )
    assert all(p.requires_grad for p in model.conv3.parameters())
    assert isinstance(model.conv2.pointwise.norm, FrozenBatchNorm2d)
    assert model.conv2.pointwise.norm.eps == 1e-3
    assert (
        isinstance(model.conv3.pointwise.norm, torch.nn.BatchNorm2d)
        and model.conv3.pointwise.norm.eps == 1e-3
    )


def test_build_from_cfg(cfg):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling import build_backbone

    cfg.MODEL.BACKBONE.NAME = "build_mobilenet_v1_backbone"
    cfg.MODEL.MOBILENET.DEPTH_MULTIPLIER = 0.5
    cfg.MODEL.MOBILENET.OUTPUT_STRIDE = 16
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    assert {k: (v.channels, v.stride) for k, v in backbone.output_shape().items()} == {
        "conv11": (256, 16),
        "conv13": (512, 16),
    }
