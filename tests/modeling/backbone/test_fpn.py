import pytest
import torch
from detectron2.modeling import BACKBONE_REGISTRY, FPN, build_backbone
from detectron2.structures import ImageList

from panext_d2.modeling.backbone.convnext import ConvNeXtBackbone, PaNeXtEBackbone
from panext_d2.modeling.backbone.fpn import p2p7_fpn


def _tiny_fpn_cfg(cfg, name, out_channels=16):
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.CONVNEXT.DEPTHS = [1, 1, 2, 1]
    cfg.MODEL.CONVNEXT.DIMS = [8, 16, 32, 64]
    cfg.MODEL.FPN.OUT_CHANNELS = out_channels
    cfg.MODEL.BACKBONE.FREEZE_AT = 1  # PaNeXt-e's stage 1 is extended: it cannot be frozen
    return cfg


@pytest.mark.parametrize(
    "name, bottom_up_type",
    [
        ("build_convnext_fpn_backbone", ConvNeXtBackbone),
        ("build_panext_e_fpn_backbone", PaNeXtEBackbone),
    ],
)
def test_p2_to_p7_shapes_and_strides_at_a_non_multiple_of_32_input(cfg, name, bottom_up_type):
    assert name in BACKBONE_REGISTRY
    fpn = build_backbone(_tiny_fpn_cfg(cfg, name)).eval()
    assert isinstance(fpn, FPN) and type(fpn.bottom_up) is bottom_up_type
    assert fpn.in_features == ("res2", "res3", "res4", "res5")  # empty MODEL.FPN.IN_FEATURES
    assert fpn.size_divisibility == 32
    # detectron2's meta-architectures pad to size_divisibility: 70 x 100 -> 96 x 128.
    images = ImageList.from_tensors([torch.randn(3, 70, 100)], fpn.size_divisibility)
    with torch.no_grad():
        out = fpn(images.tensor)
    shapes = fpn.output_shape()
    assert list(out) == ["p2", "p3", "p4", "p5", "p6", "p7"]
    assert [shapes[k].stride for k in out] == [4, 8, 16, 32, 64, 128]
    expected_hw = [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]
    for (key, feature), hw in zip(out.items(), expected_hw):
        assert feature.shape == (1, 16, *hw)
        assert shapes[key].channels == 16


def test_p6_p7_come_from_p5_as_in_panopticfcn(cfg):
    fpn = build_backbone(_tiny_fpn_cfg(cfg, "build_convnext_fpn_backbone")).eval()
    assert fpn.top_block.in_feature == "p5"
    assert fpn.top_block.p6.in_channels == cfg.MODEL.FPN.OUT_CHANNELS
    with torch.no_grad():
        out = fpn(torch.randn(1, 3, 128, 128))
        p6 = fpn.top_block.p6(out["p5"])
        torch.testing.assert_close(out["p6"], p6)
        torch.testing.assert_close(out["p7"], fpn.top_block.p7(torch.relu(p6)))


def test_explicit_in_features_are_respected(cfg):
    _tiny_fpn_cfg(cfg, "build_convnext_fpn_backbone")
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    fpn = build_backbone(cfg)
    assert list(fpn.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]


def test_full_size_fpn_parameter_counts(capsys):
    with torch.device("meta"):
        counts = {
            name: (
                sum(p.numel() for p in fpn.parameters()),
                sum(p.numel() for p in fpn.bottom_up.parameters()),
            )
            for name, fpn in [
                ("ConvNeXt-T", p2p7_fpn(ConvNeXtBackbone())),
                ("PaNeXt-e [1,2,4]", p2p7_fpn(PaNeXtEBackbone())),
                ("PaNeXt-e [1,2]", p2p7_fpn(PaNeXtEBackbone(extended_stages=(1, 2)))),
            ]
        }
    with capsys.disabled():
        print(
            "\n" + " | ".join(f"{k} + FPN P2-P7@256: {total:,}" for k, (total, _) in counts.items())
        )
    # 1x1 laterals 96/192/384/768 -> 256, four 3x3 outputs, P6 and P7 3x3 convs, all with bias.
    fpn_params = (96 + 192 + 384 + 768) * 256 + 4 * 256 + 6 * (9 * 256 * 256 + 256)
    assert fpn_params == 3_910_144
    for total, bottom_up in counts.values():
        assert total - bottom_up == fpn_params
