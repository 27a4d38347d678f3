import pytest
import torch
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from detectron2.solver import get_default_optimizer_params
from timm.layers import DropBlock2d, DropPath, LayerNorm, LayerNorm2d, Mlp
from torch import nn

from panext_d2.layers import SmeLU
from panext_d2.modeling.backbone.convnext import (
    ConvNeXtBackbone,
    ExtendedMlp,
    PaNeXtEBackbone,
    layer_lr_decay_func,
    layer_lr_decay_id,
    layer_lr_decay_multiplier,
    num_lr_decay_layers,
)

TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _tiny_cfg(cfg, name):
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.CONVNEXT.DEPTHS = list(TINY["depths"])
    cfg.MODEL.CONVNEXT.DIMS = list(TINY["dims"])
    return cfg


def test_builders_are_registered():
    assert "build_convnext_backbone" in BACKBONE_REGISTRY
    assert "build_panext_e_backbone" in BACKBONE_REGISTRY


def test_res2_to_res5_shapes_and_strides_at_a_non_multiple_of_32_input():
    model = ConvNeXtBackbone(**TINY).eval()
    h, w = 70, 100
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    shapes = model.output_shape()
    assert list(out) == ["res2", "res3", "res4", "res5"]
    assert [shapes[k].stride for k in out] == [4, 8, 16, 32]
    for name, feature in out.items():
        spec = shapes[name]
        assert feature.shape == (2, spec.channels, h // spec.stride, w // spec.stride)


def test_out_features_subset_drops_later_stages():
    model = ConvNeXtBackbone(**TINY, out_features=("res2", "res3"))
    assert len(model.stages) == 2
    assert list(model(torch.randn(1, 3, 64, 64))) == ["res2", "res3"]
    assert list(model.output_shape()) == ["res2", "res3"]


def test_cfg_builds_each_variant(cfg):
    plain = build_backbone(_tiny_cfg(cfg, "build_convnext_backbone"))
    assert type(plain) is ConvNeXtBackbone
    assert not any(isinstance(m, (SmeLU, ExtendedMlp, DropBlock2d)) for m in plain.modules())
    assert plain.freeze_at == 2  # detectron2's MODEL.BACKBONE.FREEZE_AT default
    # DROP_PATH_RATE 0.2: the last block's DropPath has the full rate.
    assert plain.stages[3].blocks[-1].drop_path.drop_prob == pytest.approx(0.2)

    cfg.MODEL.BACKBONE.FREEZE_AT = 1  # stage 1 is extended: stem only (Base-PaNeXt-e.yaml)
    e = build_backbone(_tiny_cfg(cfg, "build_panext_e_backbone"))
    assert type(e) is PaNeXtEBackbone
    assert not any("GELU" in type(m).__name__ for m in e.modules())
    for i, stage in enumerate(e.stages, start=1):
        for block in stage.blocks:
            assert isinstance(block.mlp.act, SmeLU) and block.mlp.act.beta == 2.0
            assert isinstance(block.mlp, ExtendedMlp) == (i in (1, 2, 4))
            drop_blocks = [m for m in block.drop_path.modules() if isinstance(m, DropBlock2d)]
            assert len(drop_blocks) == (1 if i in (3, 4) else 0)
            if drop_blocks:
                assert (drop_blocks[0].drop_prob, drop_blocks[0].block_size) == (0.05, 5)

    cfg.MODEL.CONVNEXT.PANEXT_E.EXTENDED_STAGES = [1, 2]
    cfg.MODEL.CONVNEXT.PANEXT_E.EXTENDED_ACT = False
    cfg.MODEL.CONVNEXT.PANEXT_E.SMELU_BETA = 1.0
    cfg.MODEL.CONVNEXT.DEPTHS = [1, 1, 3, 1]
    e2 = build_backbone(cfg)
    assert [isinstance(s.blocks[0].mlp, ExtendedMlp) for s in e2.stages] == [
        True,
        True,
        False,
        False,
    ]
    assert isinstance(e2.stages[0].blocks[0].mlp.act_mid, nn.Identity)
    assert e2.stages[0].blocks[0].mlp.act.beta == 1.0
    assert len(e2.stages[2].blocks) == 3


def test_extended_mlp_order_and_timm_init():
    torch.manual_seed(0)
    ext = ExtendedMlp(16, 64, SmeLU, mid_act=False)
    assert torch.count_nonzero(ext.fc_mid.bias) == 0
    assert ext.fc_mid.weight.std().item() == pytest.approx(0.02, rel=0.1)
    # fc_mid = identity without activation reduces it to timm's Mlp with the same fc1/fc2.
    with torch.no_grad():
        ext.fc_mid.weight.copy_(torch.eye(64))
    mlp = Mlp(16, 64, act_layer=SmeLU)
    mlp.load_state_dict(ext.state_dict(), strict=False)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(ext(x), mlp(x))


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 3, 5])
def test_freezing(freeze_at):
    torch.manual_seed(0)
    reference = ConvNeXtBackbone(**TINY, drop_path_rate=0.5).eval()
    model = ConvNeXtBackbone(**TINY, drop_path_rate=0.5, freeze_at=freeze_at)
    model.load_state_dict(reference.state_dict())
    parts = [model.stem, *model.stages]
    n_frozen = min(freeze_at, 5)
    for i, part in enumerate(parts):
        frozen = i < n_frozen
        assert all(p.requires_grad != frozen for p in part.parameters())
    model.train()
    assert [p.training for p in parts] == [i >= n_frozen for i in range(5)]
    # Norms are untouched LayerNorms (no BatchNorm to convert), and frozen parts compute
    # exactly what the unfrozen model computes in eval mode.
    norm_types = {type(m) for m in model.modules() if "Norm" in type(m).__name__}
    assert norm_types == {LayerNorm, LayerNorm2d}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        frozen_stem = model.stem(x)
        torch.testing.assert_close(frozen_stem, reference.stem(x))
        if freeze_at == 5:
            for name, value in model(x).items():
                torch.testing.assert_close(value, reference(x)[name])


def test_drop_block_and_drop_path_only_in_training():
    torch.manual_seed(0)
    plain = ConvNeXtBackbone(**TINY).eval()
    regularised = ConvNeXtBackbone(
        **TINY,
        drop_path_rate=0.5,
        drop_block_prob=0.3,
        drop_block_size=3,
        drop_block_stages=(2, 3, 4),
    )
    # DropBlock / DropPath add no state-dict keys.
    regularised.load_state_dict(plain.state_dict())
    assert sum(isinstance(m, DropBlock2d) for m in regularised.modules()) == 4
    assert sum(isinstance(m, DropPath) for m in regularised.modules()) == 4  # rate 0 for block 1
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = plain(x)["res5"]
        regularised.eval()
        torch.testing.assert_close(regularised(x)["res5"], expected)
        regularised.train()
        torch.manual_seed(1)
        assert not torch.allclose(regularised(x)["res5"], expected)


def test_layer_decay_ids_follow_the_official_layer_wise_rule():
    assert num_lr_decay_layers((3, 3, 9, 3)) == 6
    assert num_lr_decay_layers((3, 3, 27, 3)) == 12
    n = 6
    expected = {
        "backbone.bottom_up.stem.0.weight": 0,
        "backbone.stem.1.bias": 0,
        "backbone.bottom_up.stages.0.blocks.2.mlp.fc1.weight": 1,
        "backbone.bottom_up.stages.1.downsample.1.weight": 2,
        "backbone.bottom_up.stages.1.blocks.0.gamma": 2,
        "backbone.bottom_up.stages.2.downsample.0.weight": 3,
        "backbone.bottom_up.stages.2.blocks.2.conv_dw.weight": 3,
        "backbone.bottom_up.stages.2.blocks.3.norm.weight": 4,
        "backbone.stages.2.blocks.8.mlp.fc_mid.weight": 5,
        "backbone.bottom_up.stages.3.downsample.1.bias": 6,
        "backbone.bottom_up.stages.3.blocks.2.mlp.fc2.weight": 6,
        "backbone.fpn_lateral2.weight": 7,
        "backbone.top_block.p6.weight": 7,
        "sem_seg_head.stages.0.weight": 7,
        "stem.0.weight": 7,
    }
    for name, layer_id in expected.items():
        assert layer_lr_decay_id(name, n) == layer_id, name
    assert layer_lr_decay_multiplier("backbone.bottom_up.stem.0.weight", n, 0.5) == 0.5**7
    assert layer_lr_decay_multiplier("backbone.bottom_up.stages.3.blocks.0.gamma", n, 0.5) == 0.5
    assert layer_lr_decay_multiplier("backbone.fpn_output5.weight", n, 0.5) == 1.0
    assert layer_lr_decay_multiplier("backbone.bottom_up.stem.0.weight", n, 1.0) == 1.0


def test_layer_decay_with_detectron2_param_groups(cfg):
    assert layer_lr_decay_func(cfg) is None  # LAYER_DECAY 1.0 = off
    cfg.MODEL.CONVNEXT.LAYER_DECAY = 0.8
    cfg.MODEL.CONVNEXT.DEPTHS = [1, 1, 9, 1]
    cfg.MODEL.CONVNEXT.DIMS = [8, 16, 32, 64]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.BACKBONE.NAME = "build_convnext_fpn_backbone"
    model = nn.Module()
    model.backbone = build_backbone(cfg)
    groups = get_default_optimizer_params(
        model, base_lr=1.0, lr_factor_func=layer_lr_decay_func(cfg)
    )
    lrs = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    ids = {layer_lr_decay_id(name, 6) for name in named if ".bottom_up." in name}
    assert ids == set(range(7))  # contiguous for ConvNeXt-T's stage-3 depth
    assert lrs[id(named["backbone.bottom_up.stem.0.weight"])] == pytest.approx(0.8**7)
    assert lrs[id(named["backbone.bottom_up.stages.2.blocks.4.mlp.fc1.weight"])] == pytest.approx(
        0.8**3
    )
    assert lrs[id(named["backbone.fpn_lateral2.weight"])] == pytest.approx(1.0)


def test_full_size_parameter_counts(capsys):
    """docs/DESIGN.md §1: ConvNeXt-T ~ 27.8 M; PaNeXt-e +2.2 M with stages [1, 2], +~30 M with [1, 2, 4]."""
    import timm

    with torch.device("meta"):
        timm_tiny = timm.create_model("convnext_tiny", pretrained=False, num_classes=0)
        tiny = _n_params(ConvNeXtBackbone())
        e124 = _n_params(PaNeXtEBackbone())
        e12 = _n_params(PaNeXtEBackbone(extended_stages=(1, 2)))
    timm_no_head = sum(
        p.numel() for n, p in timm_tiny.named_parameters() if not n.startswith("head.")
    )
    with capsys.disabled():
        print(
            f"\nConvNeXt-T {tiny:,} | PaNeXt-e [1,2,4] {e124:,} (+{e124 - tiny:,})"
            f" | PaNeXt-e [1,2] {e12:,} (+{e12 - tiny:,})"
        )
    assert tiny == timm_no_head
    assert tiny == pytest.approx(27.8e6, abs=0.05e6)
    # One 4C -> 4C linear with bias per block of the extended stages.
    assert e12 - tiny == 3 * (384**2 + 384) + 3 * (768**2 + 768)  # 2.2 M
    assert e12 - tiny == pytest.approx(2.2e6, abs=0.05e6)
    assert e124 - e12 == 3 * (3072**2 + 3072)  # 28.3 M
    assert e124 - tiny == pytest.approx(30.5e6, abs=0.1e6)


def test_an_extended_stage_cannot_be_frozen():
    """Its extra pointwise convs are new: freezing them would keep them random forever."""
    tiny = dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), extended_stages=(1, 2))
    with pytest.raises(ValueError, match=r"FREEZE_AT.*extended stage\(s\) \[1\]"):
        ConvNeXtBackbone(**tiny, freeze_at=2)
    backbone = ConvNeXtBackbone(**tiny, freeze_at=1)
    assert all(p.requires_grad for p in backbone.stages.parameters())
    assert not any(p.requires_grad for p in backbone.stem.parameters())
