"""BiFPNDecoder (Andrade (2021) §5.5): outputs and strides, eq. 5.2 fusion against a hand
computation, the node wiring of a layer, "sum" fusion, odd input sizes, parameter counts,
and EfficientDet-style EncDecSegmentors ("last_layer" / "fuse_block") that train and infer."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model

import panext_d2.modeling.backbone.timm_features  # noqa: F401  (registers the backbone)
from panext_d2 import get_panext_cfg
from panext_d2.modeling.encdec import EncDecSegmentor
from panext_d2.modeling.encdec.bifpn import (
    BiFPNDecoder,
    BiFPNLayer,
    BiFPNNode,
    WeightedFusion,
    resample_to,
)

from ...conftest import REPO_ROOT

SHAPES = {
    "c3": ShapeSpec(channels=6, stride=8),
    "c4": ShapeSpec(channels=10, stride=16),
    "c5": ShapeSpec(channels=12, stride=32),
}
C = 8


def decoder(**kwargs):
    args = dict(input_shape=SHAPES, in_features=["c3", "c4", "c5"], channels=C, num_layers=2)
    args.update(kwargs)
    return BiFPNDecoder(**args)


def features(height, width, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(
            n, s.channels, math.ceil(height / s.stride), math.ceil(width / s.stride), generator=g
        )
        for name, s in SHAPES.items()
    }


def node_params(channels, num_inputs, fusion="fast_normalized"):
    """Depthwise 3x3 (no bias) + pointwise (no bias) + BN scale / shift (+ fusion weights)."""
    return 9 * channels + channels**2 + 2 * channels + (num_inputs if fusion != "sum" else 0)


def test_outputs_and_strides():
    d = decoder().eval()
    assert d.out_strides == [128, 64, 32, 16, 8]
    assert d.out_channels == [C] * 5
    assert d.last_conv is None
    with torch.no_grad():
        outs = d(features(64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (2, C, 1, 1),
        (2, C, 1, 1),
        (2, C, 2, 2),
        (2, C, 4, 4),
        (2, C, 8, 8),
    ]
    with torch.no_grad():
        outs = d(features(256, 128))
    assert [tuple(o.shape[-2:]) for o in outs] == [(2, 1), (4, 2), (8, 4), (16, 8), (32, 16)]


def test_no_extra_levels():
    d = decoder(num_extra_levels=0).eval()
    assert d.out_strides == [32, 16, 8]
    with torch.no_grad():
        outs = d(features(64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(2, 3), (4, 6), (8, 12)]


def test_odd_input_sizes():
    """72 x 88 through a real timm encoder: c3 9x11, c4 5x6, c5 3x3, P6 2x2, P7 1x1."""
    cfg = get_panext_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_timm_features_backbone"
    cfg.MODEL.TIMM.NAME = "tinynet_e"
    cfg.MODEL.TIMM.OUT_INDICES = [2, 3, 4]
    backbone = build_backbone(cfg)
    d = BiFPNDecoder(
        input_shape=backbone.output_shape(), in_features=["c3", "c4", "c5"], channels=C
    )
    outs = d(backbone(torch.randn(2, 3, 72, 88)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(1, 1), (2, 2), (3, 3), (5, 6), (9, 11)]
    sum(o.sum() for o in outs).backward()  # sizes also agree in the backward pass


def test_resample_to():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    assert resample_to(x, (5, 7)) is x
    down = resample_to(x, (3, 4))
    torch.testing.assert_close(down, F.max_pool2d(x, 3, 2, 1))
    up = resample_to(down, (5, 7))
    torch.testing.assert_close(up, F.interpolate(down, size=(5, 7), mode="nearest"))
    assert resample_to(x, (2, 2)).shape[-2:] == (2, 2)  # more than one halving


def test_fast_normalized_fusion_formula():
    fusion = WeightedFusion(3, "fast_normalized", eps=1e-4)
    with torch.no_grad():
        fusion.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
    xs = [torch.randn(2, 4, 3, 5) for _ in range(3)]
    # eq. 5.2: relu(w_i) / (eps + sum_j relu(w_j)); relu(-1) = 0 drops the second input.
    expected = (2.0 * xs[0] + 0.0 * xs[1] + 0.5 * xs[2]) / (1e-4 + 2.5)
    torch.testing.assert_close(fusion(xs), expected)
    torch.testing.assert_close(
        fusion.normalized_weights(), torch.tensor([2.0, 0.0, 0.5]) / (1e-4 + 2.5)
    )


def test_sum_fusion():
    fusion = WeightedFusion(3, "sum")
    assert fusion.weight is None and not list(fusion.parameters())
    xs = [torch.randn(2, 4, 3, 5) for _ in range(3)]
    torch.testing.assert_close(fusion(xs), xs[0] + xs[1] + xs[2])

    node = BiFPNNode(2, C, fusion="sum").eval()
    a, b = torch.randn(2, C, 4, 4), torch.randn(2, C, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(node([a, b]), node.norm(node.conv(F.silu(a + b))))


def test_layer_wiring_against_hand_computation():
    """Bottom-up node of the middle level of a 3-level layer: eq. 5.2 over (input, top-down
    node, pooled finer output), then swish -> separable conv -> BN."""
    torch.manual_seed(0)
    layer = BiFPNLayer(3, C, fusion="fast_normalized", eps=1e-4).eval()
    w = torch.tensor([0.3, 1.2, -0.4])
    with torch.no_grad():
        for node in list(layer.top_down) + list(layer.bottom_up):
            node.fuse.weight.uniform_(0.2, 2.0)
            node.norm.running_mean.normal_()
            node.norm.running_var.uniform_(0.5, 1.5)
        layer.bottom_up[0].fuse.weight.copy_(w)  # one weight clipped to 0 by the ReLU
    p3, p4, p5 = torch.randn(2, C, 8, 8), torch.randn(2, C, 4, 4), torch.randn(2, C, 2, 2)
    with torch.no_grad():
        outs = layer([p3, p4, p5])

        def fused(node, xs):
            v = F.relu(node.fuse.weight)
            v = v / (1e-4 + v.sum())
            return node.norm(node.conv(F.silu(sum(vi * x for vi, x in zip(v, xs)))))

        up = lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest")  # noqa: E731
        td4 = fused(layer.top_down[1], [p4, up(p5)])
        td3 = fused(layer.top_down[0], [p3, up(td4)])
        out4 = fused(layer.bottom_up[0], [p4, td4, F.max_pool2d(td3, 3, 2, 1)])
        out5 = fused(layer.bottom_up[1], [p5, F.max_pool2d(out4, 3, 2, 1)])
    assert len(layer.bottom_up[0].fuse.weight) == 3 and len(layer.bottom_up[1].fuse.weight) == 2
    for got, want in zip(outs, [td3, out4, out5]):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("fusion", ["fast_normalized", "sum"])
@pytest.mark.parametrize("levels", [2, 5])
def test_layer_parameter_count(fusion, levels):
    """2 (L - 1) nodes (top-down at every level but the coarsest, bottom-up at every level but
    the finest); fusion weights: 2 per top-down node, 3 per intermediate bottom-up node, 2 for
    the coarsest: 2 (L - 1) + 3 (L - 2) + 2 = 5 L - 6."""
    layer = BiFPNLayer(levels, C, fusion=fusion)
    count = sum(p.numel() for p in layer.parameters())
    weights = (5 * levels - 6) if fusion == "fast_normalized" else 0
    assert count == 2 * (levels - 1) * (9 * C + C * C + 2 * C) + weights
    # EfficientDet-D2 width: 112 channels, 5 levels -> 2 * 4 * (112^2 + 11 * 112) + 19.
    if levels == 5 and fusion == "fast_normalized":
        d2 = BiFPNLayer(5, 112)
        assert sum(p.numel() for p in d2.parameters()) == 8 * (112**2 + 11 * 112) + 19 == 110227


def test_decoder_parameter_count():
    d = decoder(num_layers=3)
    laterals = sum(s.channels * C + 2 * C for s in SHAPES.values())
    extra = SHAPES["c5"].channels * C + 2 * C
    layer = 8 * (C * C + 11 * C) + 19
    assert sum(p.numel() for p in d.parameters()) == laterals + extra + 3 * layer


def test_finest_only_has_the_same_finest_output():
    full = decoder().eval()
    finest = decoder(finest_only=True).eval()
    assert finest.out_strides == [8] and finest.out_channels == [C]
    missing, unexpected = finest.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith("layers.1.bottom_up.") for k in unexpected)
    assert not list(finest.layers[-1].bottom_up)
    f = features(64, 64)
    with torch.no_grad():
        outs = finest(f)
        assert len(outs) == 1
        torch.testing.assert_close(outs[0], full(f)[-1])


def test_errors_name_the_keys():
    with pytest.raises(ValueError, match="MODEL.ENCDEC.BIFPN.FUSION='weighted'"):
        decoder(fusion="weighted")
    with pytest.raises(ValueError, match=r"MODEL.ENCDEC.IN_FEATURES=\['res3', 'c4'\].*missing \['res3'\]"):
        decoder(in_features=["res3", "c4"])
    with pytest.raises(ValueError, match="MODEL.ENCDEC.IN_FEATURES.*twice the previous.*strides"):
        decoder(in_features=["c3", "c5"])
    with pytest.raises(ValueError, match="MODEL.ENCDEC.BIFPN.ACTIVATION"):
        decoder(activation="tanhh")
    with pytest.raises(ValueError, match="MODEL.ENCDEC.BIFPN.NUM_LAYERS"):
        decoder(num_layers=0)


def efficientdet_cfg(mode):
    cfg = get_panext_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "EncDecSegmentor"
    cfg.MODEL.BACKBONE.NAME = "build_timm_features_backbone"
    cfg.MODEL.TIMM.NAME = "tinynet_e"  # a small EfficientNet: same feature layout as B2
    cfg.MODEL.TIMM.OUT_INDICES = [2, 3, 4]
    cfg.MODEL.ENCDEC.IN_FEATURES = ["c3", "c4", "c5"]
    cfg.MODEL.ENCDEC.DECODER_NAME = "BiFPNDecoder"
    cfg.MODEL.ENCDEC.HEAD = mode
    cfg.MODEL.ENCDEC.BIFPN.CHANNELS = C
    cfg.MODEL.ENCDEC.BIFPN.NUM_LAYERS = 2
    cfg.MODEL.ENCDEC.HYPERCOLUMN_CHANNELS = 8
    cfg.MODEL.ENCDEC.FUSE.SE_REDUCTION = 4
    cfg.MODEL.ENCDEC.NUM_CLASSES = 2
    cfg.MODEL.ENCDEC.SIZE_DIVISIBILITY = 128
    return cfg


def tiny_batch(height=64, width=64, n=2):
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(n):
        target = torch.zeros(height, width, dtype=torch.long)
        target[16:40, 20:44] = 1
        image = torch.rand(3, height, width, generator=g) * 255
        image[:, 16:40, 20:44] *= 0.3
        batch.append({"image": image, "sem_seg": target, "height": height, "width": width})
    return batch


@pytest.mark.parametrize("mode", ["last_layer", "fuse_block"])
def test_efficientdet_segmentor_trains_and_infers(mode):
    torch.manual_seed(0)
    model = build_model(efficientdet_cfg(mode))
    assert isinstance(model, EncDecSegmentor)
    decoder_ = model.head.decoder
    assert isinstance(decoder_, BiFPNDecoder)
    assert model.size_divisibility == 128
    # "fuse_block": the hypercolumns read all 5 levels (§8.4); "last_layer": the finest alone.
    assert decoder_.out_strides == ([8] if mode == "last_layer" else [128, 64, 32, 16, 8])

    batch = tiny_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for step in range(6):
        optimizer.zero_grad()
        loss = sum(model(batch).values())
        loss.backward()
        if step == 0:
            no_grad = [
                n for n, p in decoder_.named_parameters() if p.grad is None or not p.grad.any()
            ]
            assert not no_grad, no_grad
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses

    model.eval()
    with torch.no_grad():
        out = model(tiny_batch(72, 88, n=1))
    assert out[0]["sem_seg"].shape == (2, 72, 88)


@pytest.mark.parametrize("name", ["efficientdet_d2", "efficientdet_d2_proposed"])
def test_recipe_configs(name):
    path = os.path.join(REPO_ROOT, "configs", "encdec", "siim_acr", name + ".yaml")
    cfg = get_panext_cfg(path, ["MODEL.DEVICE", "meta"])
    assert cfg.MODEL.BACKBONE.NAME == "build_timm_features_backbone"
    assert cfg.MODEL.TIMM.NAME == "efficientnet_b2"
    assert cfg.MODEL.ENCDEC.DECODER_NAME == "BiFPNDecoder"
    assert cfg.MODEL.ENCDEC.BIFPN.CHANNELS == 112 and cfg.MODEL.ENCDEC.BIFPN.NUM_LAYERS == 5
    proposed = name.endswith("proposed")
    assert cfg.MODEL.ENCDEC.HEAD == ("fuse_block" if proposed else "last_layer")
    assert cfg.MODEL.ENCDEC.LOSS.FG_WEIGHT == (0.1 if proposed else 0.0)
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.size_divisibility == 128
    assert model.head.decoder.out_channels == [112] * (5 if proposed else 1)
    shapes = model.backbone.output_shape()
    assert {n: s.channels for n, s in shapes.items()} == {"c3": 48, "c4": 120, "c5": 352}
