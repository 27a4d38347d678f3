"""build_timm_features_backbone: names / strides / channels from timm's feature_info, outputs
equal to timm's own features_only model, MODEL.TIMM.WEIGHTS loading and its errors."""

import pytest
import timm
import torch
from detectron2.modeling import build_backbone

from panext_d2.modeling.backbone.timm_features import (
    TimmFeaturesBackbone,
    load_timm_state_dict,
)


def timm_cfg(cfg, name="efficientnet_b2", out_indices=(1, 2, 3, 4), weights=""):
    cfg.MODEL.BACKBONE.NAME = "build_timm_features_backbone"
    cfg.MODEL.TIMM.NAME = name
    cfg.MODEL.TIMM.OUT_INDICES = list(out_indices)
    cfg.MODEL.TIMM.WEIGHTS = weights
    return cfg


def randomized_state_dict(name, seed=0):
    """A whole-model timm state dict with non-trivial norm parameters and statistics."""
    torch.manual_seed(seed)
    state = timm.create_model(name).state_dict()
    g = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith("running_var"):
            value.copy_(torch.rand(value.shape, generator=g) + 0.5)
        elif key.endswith(("running_mean", "bias")):
            value.copy_(0.1 * torch.randn(value.shape, generator=g))
        elif key.endswith("weight") and value.ndim == 1:  # norm scales
            value.copy_(1 + 0.1 * torch.randn(value.shape, generator=g))
    return state


def test_efficientnet_b2_names_strides_channels(cfg):
    backbone = build_backbone(timm_cfg(cfg))
    assert isinstance(backbone, TimmFeaturesBackbone)
    ref = timm.create_model("efficientnet_b2", features_only=True, out_indices=(1, 2, 3, 4))
    shapes = backbone.output_shape()
    assert list(shapes) == ["c2", "c3", "c4", "c5"]
    assert [s.stride for s in shapes.values()] == ref.feature_info.reduction() == [4, 8, 16, 32]
    assert [s.channels for s in shapes.values()] == ref.feature_info.channels()
    assert [s.channels for s in shapes.values()] == [24, 48, 120, 352]
    assert backbone.size_divisibility == 32

    x = torch.randn(1, 3, 64, 96)
    out = backbone(x)
    assert list(out) == ["c2", "c3", "c4", "c5"]
    for name, spec in shapes.items():
        assert out[name].shape == (1, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_out_indices_subset(cfg):
    backbone = build_backbone(timm_cfg(cfg, out_indices=(2, 3, 4)))
    shapes = backbone.output_shape()
    assert {n: (s.channels, s.stride) for n, s in shapes.items()} == {
        "c3": (48, 8),
        "c4": (120, 16),
        "c5": (352, 32),
    }


def test_input_channels_follow_pixel_mean(cfg):
    cfg.MODEL.PIXEL_MEAN = [128.0]
    cfg.MODEL.PIXEL_STD = [64.0]
    backbone = build_backbone(timm_cfg(cfg, name="tinynet_e", out_indices=(2, 3, 4)))
    assert backbone(torch.randn(2, 1, 32, 32))["c5"].shape == (2, 160, 1, 1)


@pytest.mark.parametrize("name", ["efficientnet_b2", "convnext_atto"])
def test_weights_file_matches_timm_features_model(cfg, tmp_path, name):
    """Our loader and timm's own (pretrained=True from a local file, which fills the whole
    model before wrapping it) give equal features; convnext_atto exercises the key names
    timm's generic feature wrapper flattens (stages.0 -> stages_0)."""
    indices = (1, 2, 3) if name.startswith("convnext") else (1, 2, 3, 4)
    path = tmp_path / "full_model.pth"
    state = randomized_state_dict(name)
    torch.save(state, path)

    backbone = build_backbone(timm_cfg(cfg, name=name, out_indices=indices, weights=str(path)))
    ref = timm.create_model(
        name,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
        features_only=True,
        out_indices=indices,
    )
    backbone.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = list(backbone(x).values())
        theirs = ref(x)
    assert len(ours) == len(theirs) == len(indices)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_weights_round_trip(cfg, tmp_path):
    """Features-only weights saved from a whole model load back unchanged; the keys only the
    whole model has (classifier, conv_head, bn2) are ignored."""
    name = "efficientnet_b2"
    path = tmp_path / "b2.pth"
    state = randomized_state_dict(name, seed=1)
    assert "classifier.weight" in state and "conv_head.weight" in state
    torch.save(state, path)
    loaded = build_backbone(timm_cfg(cfg, weights=str(path)))
    for key, value in loaded.body.state_dict().items():
        assert torch.equal(value, state[key]), key

    # Same features as a features-only model given the same tensors directly.
    ref = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4))
    ref.load_state_dict({k: state[k] for k in ref.state_dict()})
    loaded.eval()
    ref.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(loaded(x).values(), ref(x)):
            assert torch.equal(a, b)


def test_missing_weights_file_names_the_path(cfg, tmp_path):
    path = tmp_path / "does_not_exist.pth"
    with pytest.raises(FileNotFoundError, match="does_not_exist.pth"):
        build_backbone(timm_cfg(cfg, weights=str(path)))


def test_incomplete_weights_file_names_the_path_and_keys(tmp_path):
    model = timm.create_model("tinynet_e", features_only=True, out_indices=(2, 3, 4))
    state = dict(model.state_dict())
    del state["conv_stem.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(KeyError, match=r"partial\.pth.*conv_stem\.weight"):
        load_timm_state_dict(model, str(path))


def test_rgb_weights_adapt_to_one_input_channel(tmp_path):
    state = timm.create_model("tinynet_e").state_dict()
    path = tmp_path / "rgb.pth"
    torch.save(state, path)
    model = timm.create_model("tinynet_e", features_only=True, in_chans=1)
    load_timm_state_dict(model, str(path), in_chans=1)
    expected = state["conv_stem.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.conv_stem.weight.detach(), expected)


def test_unknown_model_name_names_the_key():
    with pytest.raises(ValueError, match="MODEL.TIMM.NAME"):
        TimmFeaturesBackbone(name="no_such_model_xyz", out_indices=[1])
