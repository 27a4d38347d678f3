import math
import os

import pytest
import torch
import torchvision
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from panext_d2 import get_panext_cfg
from panext_d2.modeling.backbone.squeezenet import (
    SqueezeNet,
    convert_torchvision_squeezenet,
    squeezenet_layer_names,
)

from tests.conftest import REPO_ROOT

BASE_SQUEEZENET = os.path.join(REPO_ROOT, "configs/lowcost/Base-SqueezeNet.yaml")

TORCHVISION = {"v1.0": torchvision.models.squeezenet1_0, "v1.1": torchvision.models.squeezenet1_1}
# Table 2.4 (v1.0) fire configurations (s1x1, e1x1, e3x3) and conv1 (kernel, depth).
TABLE_2_4_FIRES = [
    (16, 64, 64),
    (16, 64, 64),
    (32, 128, 128),
    (32, 128, 128),
    (48, 192, 192),
    (48, 192, 192),
    (64, 256, 256),
    (64, 256, 256),
]


def _fire_params(c_in, s, e1, e3):
    return c_in * s + s + s * e1 + e1 + 9 * s * e3 + e3


def test_layer_names():
    assert squeezenet_layer_names("v1.0") == (
        "conv1",
        "pool1",
        "fire2",
        "fire3",
        "fire4",
        "pool4",
        "fire5",
        "fire6",
        "fire7",
        "fire8",
        "pool8",
        "fire9",
    )
    assert squeezenet_layer_names("v1.1") == (
        "conv1",
        "pool1",
        "fire2",
        "fire3",
        "pool3",
        "fire4",
        "fire5",
        "pool5",
        "fire6",
        "fire7",
        "fire8",
        "fire9",
    )


@pytest.mark.parametrize("version,expected", [("v1.1", 722496), ("v1.0", 735424)])
def test_feature_parameter_counts(version, expected):
    model = SqueezeNet(version=version, out_features=["fire9"])
    ours = sum(p.numel() for p in model.parameters())
    assert ours == expected
    assert ours == sum(p.numel() for p in TORCHVISION[version](weights=None).features.parameters())


def test_v1_0_follows_table_2_4():
    conv1, c_in = 7 * 7 * 3 * 96 + 96, 96
    total = conv1
    for s, e1, e3 in TABLE_2_4_FIRES:
        total += _fire_params(c_in, s, e1, e3)
        c_in = e1 + e3
    assert sum(p.numel() for p in SqueezeNet(version="v1.0").parameters()) == total


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_matches_torchvision_with_converted_weights(version):
    torch.manual_seed(0)
    reference = TORCHVISION[version](weights=None).eval()
    names = squeezenet_layer_names(version)
    model = SqueezeNet(version=version, out_features=names, padding="torchvision").eval()
    # Our init differs from torchvision's draws, so equality below needs the conversion.
    result = model.load_state_dict(convert_torchvision_squeezenet(reference.state_dict(), version))
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 67, 83)
    with torch.no_grad():
        ours = model(x)
        theirs = x
        for index, layer in enumerate(reference.features):
            theirs = layer(theirs)
            if index >= 1:  # features.0 / 1 are conv1 and its ReLU, one layer here
                torch.testing.assert_close(ours[names[index - 1]], theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours["fire9"], reference.features(x), atol=1e-5, rtol=0)


def test_converter_prefix_and_classifier_dropped():
    sd = torchvision.models.squeezenet1_1(weights=None).state_dict()
    converted = convert_torchvision_squeezenet(sd, "v1.1", prefix="backbone.")
    assert "backbone.conv1.weight" in converted and "backbone.fire9.expand3x3.bias" in converted
    assert "backbone.fire2.squeeze.weight" in converted
    assert not any("classifier" in k for k in converted)
    assert len(converted) == len(sd) - 2  # classifier.1.weight / bias


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
@pytest.mark.parametrize("output_stride", [16, 8, 4])
def test_same_padding_shapes_and_strides(version, output_stride):
    names = squeezenet_layer_names(version)
    model = SqueezeNet(version=version, out_features=names, output_stride=output_stride).eval()
    h, w = 100, 132
    with torch.no_grad():
        out = model(torch.zeros(1, 3, h, w))
    shapes = model.output_shape()
    assert list(out) == list(names)
    for name in names:
        stride = shapes[name].stride
        assert stride <= output_stride
        assert tuple(out[name].shape[1:]) == (
            shapes[name].channels,
            math.ceil(h / stride),
            math.ceil(w / stride),
        )
    assert shapes["fire9"].stride == output_stride and shapes["fire9"].channels == 512
    assert model.size_divisibility == output_stride
    # DeepLab: every fire after the removed strides is dilated by their product.
    assert model.dilations["fire9"] == 16 // output_stride
    assert model.fire9.expand3x3.dilation == (16 // output_stride,) * 2


def test_v1_1_stride8_pool_has_128_channels():
    shapes = SqueezeNet(version="v1.1", out_features=["pool1", "pool3", "fire9"]).output_shape()
    assert shapes["pool3"] == ShapeSpec(channels=128, stride=8)
    assert shapes["pool1"] == ShapeSpec(channels=64, stride=4)


def test_last_atrous_rate():
    model = SqueezeNet(version="v1.1", output_stride=8, last_atrous_rate=3)
    assert model.fire9.expand3x3.dilation == (6, 6) and model.fire8.expand3x3.dilation == (2, 2)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 80))["fire9"].shape[-2:] == (8, 10)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        SqueezeNet(version="v1.2")
    with pytest.raises(ValueError):
        SqueezeNet(version="1.1")  # the former spelling
    with pytest.raises(ValueError):
        SqueezeNet(version="v1.0", out_features=["pool3"])  # v1.1's name
    with pytest.raises(ValueError):
        SqueezeNet(output_stride=32)
    with pytest.raises(ValueError):
        SqueezeNet(padding="valid")


def test_build_from_config(cfg):
    cfg.MODEL.BACKBONE.NAME = "build_squeezenet_backbone"
    cfg.MODEL.SQUEEZENET.OUT_FEATURES = ["pool3", "fire9"]
    cfg.MODEL.SQUEEZENET.OUTPUT_STRIDE = 8
    backbone = build_backbone(cfg)
    assert isinstance(backbone, SqueezeNet)
    assert backbone.output_shape() == {
        "pool3": ShapeSpec(channels=128, stride=8),
        "fire9": ShapeSpec(channels=512, stride=8),
    }


def _conv1(backbone):
    """(kernel, out channels) of conv1: (7, 96) in v1.0, (3, 64) in v1.1 (torchvision's)."""
    return backbone.conv1.kernel_size[0], backbone.conv1.out_channels


@pytest.mark.parametrize("quote", ['"', ""])
def test_version_set_in_yaml(tmp_path, quote):
    """A YAML file can select v1.0, quoted or not (a numeric "1.0" would turn into a float)."""
    path = tmp_path / "squeezenet_v1_0.yaml"
    path.write_text(
        f'_BASE_: "{BASE_SQUEEZENET}"\nMODEL:\n  SQUEEZENET:\n    VERSION: {quote}v1.0{quote}\n'
    )
    cfg = get_panext_cfg(str(path))
    assert cfg.MODEL.SQUEEZENET.VERSION == "v1.0"
    backbone = build_backbone(cfg)
    assert backbone.version == "v1.0" and _conv1(backbone) == (7, 96)
    assert _conv1(build_backbone(get_panext_cfg(BASE_SQUEEZENET))) == (3, 64)  # the default


def test_version_set_on_the_command_line():
    """KEY VALUE overrides after a YAML merge: the file's v1.1, then v1.0, then back."""
    cfg = get_panext_cfg(BASE_SQUEEZENET, ["MODEL.SQUEEZENET.VERSION", "v1.0"])
    assert _conv1(build_backbone(cfg)) == (7, 96)
    cfg.merge_from_list(["MODEL.SQUEEZENET.VERSION", "v1.1"])
    assert _conv1(build_backbone(cfg)) == (3, 64)


def test_unknown_version_names_the_key(cfg):
    cfg.MODEL.BACKBONE.NAME = "build_squeezenet_backbone"
    cfg.MODEL.SQUEEZENET.VERSION = "1.0"
    with pytest.raises(ValueError, match=r"MODEL\.SQUEEZENET\.VERSION='1\.0'.*'v1\.0', 'v1\.1'"):
        build_backbone(cfg)
