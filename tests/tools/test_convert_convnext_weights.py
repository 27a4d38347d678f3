import re

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_backbone
from safetensors.torch import save_file
from timm.models.convnext import ConvNeXt
from torch import nn

from tests.tools.conftest import load_script

DEPTHS, DIMS = (1, 1, 2, 1), (16, 32, 64, 128)


def _tool():
    return load_script("tools/convert_convnext_weights.py")


def _to_official(state_dict):
    """timm names -> facebookresearch/ConvNeXt names, written by hand for the test."""
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r"^stem\.", "downsample_layers.0.", k)
        k = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", k)
        k = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", k)
        k = (
            k.replace(".conv_dw.", ".dwconv.")
            .replace(".mlp.fc1.", ".pwconv1.")
            .replace(".mlp.fc2.", ".pwconv2.")
        )
        k = k.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        out[k] = v
    return out


@pytest.fixture(scope="module")
def timm_model():
    torch.manual_seed(0)
    model = ConvNeXt(depths=DEPTHS, dims=DIMS, num_classes=10).eval()
    with torch.no_grad():  # random everything, layer scale included, so every weight matters
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


@pytest.fixture(scope="module")
def checkpoints(timm_model, tmp_path_factory):
    """The same weights as a timm .pth, a timm .safetensors and an official {"model": ...} .pth."""
    d = tmp_path_factory.mktemp("convnext")
    sd = {k: v.contiguous() for k, v in timm_model.state_dict().items()}
    official = _to_official(sd)
    assert "downsample_layers.0.0.weight" in official and "stages.0.0.pwconv1.weight" in official
    assert (
        "stages.0.0.gamma" in official and "norm.weight" in official and "head.weight" in official
    )
    torch.save(sd, d / "timm.pth")
    save_file(sd, str(d / "timm.safetensors"))
    torch.save({"model": official}, d / "official.pth")
    return {name: str(d / name) for name in ("timm.pth", "timm.safetensors", "official.pth")}


def _model(cfg, name):
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.CONVNEXT.DEPTHS = list(DEPTHS)
    cfg.MODEL.CONVNEXT.DIMS = list(DIMS)
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    wrapper = nn.Module()  # stands for a meta-architecture: the backbone lives at `backbone`
    wrapper.backbone = build_backbone(cfg)
    return wrapper.eval()


def _convert(tool, src, tmp_path, prefix=None):
    out = str(tmp_path / "d2.pth")
    tool.main([src, out] + ([] if prefix is None else ["--prefix", prefix]))
    return out


@pytest.mark.parametrize("source", ["timm.pth", "timm.safetensors", "official.pth"])
@pytest.mark.parametrize(
    "builder, prefix",
    [("build_convnext_fpn_backbone", None), ("build_convnext_backbone", "backbone.")],
)
def test_converted_weights_reproduce_timm_features(
    cfg, timm_model, checkpoints, tmp_path, source, builder, prefix
):
    path = _convert(_tool(), checkpoints[source], tmp_path, prefix)
    saved = torch.load(path, weights_only=True)
    assert saved["matching_heuristics"] is False and saved["__author__"]
    prefix = prefix or "backbone.bottom_up."
    # Classifier dropped (timm head.*, official norm.* / head.*): only stem and stages remain.
    assert all(k.startswith((prefix + "stem.", prefix + "stages.")) for k in saved["model"])

    model = _model(cfg, builder)
    backbone = model.get_submodule(prefix[:-1])
    assert set(saved["model"]) == {prefix + k for k in backbone.state_dict()}
    DetectionCheckpointer(model).load(path)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = backbone(x)
        reference = timm_model.forward_intermediates(x, intermediates_only=True)
    assert len(reference) == 4
    for name, expected in zip(["res2", "res3", "res4", "res5"], reference):
        torch.testing.assert_close(ours[name], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("extended_stages", [[1, 2, 4], [1, 2]])
def test_panext_e_loads_everything_but_the_extra_linears(
    cfg, checkpoints, tmp_path, capsys, extended_stages
):
    path = _convert(_tool(), checkpoints["official.pth"], tmp_path)
    cfg.MODEL.CONVNEXT.PANEXT_E.EXTENDED_STAGES = extended_stages
    cfg.MODEL.BACKBONE.FREEZE_AT = 1  # as Base-PaNeXt-e.yaml: stage 1 is extended
    model = _model(cfg, "build_panext_e_fpn_backbone")
    converted = torch.load(path, weights_only=True)["model"]
    model_keys = set(model.state_dict())
    assert set(converted) <= model_keys  # nothing unexpected
    bottom_up_missing = sorted(
        k for k in model_keys - set(converted) if k.startswith("backbone.bottom_up.")
    )
    with capsys.disabled():
        print(f"\nPaNeXt-e {extended_stages}: keys not in the checkpoint: {bottom_up_missing}")
    expected = {
        f"backbone.bottom_up.stages.{s - 1}.blocks.{b}.mlp.fc_mid.{p}"
        for s in extended_stages
        for b in range(DEPTHS[s - 1])
        for p in ("weight", "bias")
    }
    assert set(bottom_up_missing) == expected
    DetectionCheckpointer(model).load(path)
    state = model.state_dict()
    for k, v in converted.items():
        torch.testing.assert_close(state[k], v, rtol=0, atol=0)
