import pytest
import torch
from detectron2.layers import Conv2d
from detectron2.modeling import build_model

from panext_d2 import get_panext_cfg
from panext_d2.modeling.encdec import (
    EncDecSegmentor,
    InvertedHypercolumns,
    MultiLevelFuse,
    SqueezeExcitation,
    UNetDecoder,
)
from panext_d2.modeling.encdec.unet import UNetStage, resize_to

H, W = 64, 80  # not multiples of 32


def tiny_cfg(cfg, decoder="fuse_block", **encdec):
    cfg.MODEL.META_ARCHITECTURE = "EncDecSegmentor"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.ENCDEC.HEAD = decoder
    cfg.MODEL.ENCDEC.DECODER_CHANNELS = [32, 16, 8]
    cfg.MODEL.ENCDEC.HYPERCOLUMN_CHANNELS = 8
    cfg.MODEL.ENCDEC.FUSE.SE_REDUCTION = 4
    for key, value in encdec.items():
        node, name = cfg.MODEL.ENCDEC, key
        if "." in key:
            sub, name = key.split(".")
            node = node[sub]
        node[name] = value
    return cfg


def _inputs(n=2, with_target=True):
    g = torch.Generator().manual_seed(0)
    batch = []
    for i in range(n):
        d = {
            "image": torch.randint(0, 256, (3, H, W), generator=g).float(),
            "height": H,
            "width": W,
        }
        if with_target:
            target = torch.zeros(H, W, dtype=torch.long)
            if i == 0:
                target[10:30, 20:50] = 2
                target[0:3, 0:3] = 255
            d["sem_seg"] = target
        batch.append(d)
    return batch


@pytest.mark.parametrize("decoder", ["last_layer", "hypercolumns", "fuse_block"])
@pytest.mark.parametrize("divisibility", [32, 0])
def test_inference_shapes(cfg, decoder, divisibility):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cfg, decoder, SIZE_DIVISIBILITY=divisibility)).eval()
    assert isinstance(model, EncDecSegmentor)
    with torch.no_grad():
        out = model(
            _inputs(with_target=False)
            + [{"image": torch.zeros(3, 50, 70), "height": 100, "width": 140}]
        )
    assert [o["sem_seg"].shape for o in out] == [(3, H, W), (3, H, W), (3, 100, 140)]
    assert all(torch.isfinite(o["sem_seg"]).all() for o in out)


def test_head_composition(cfg):
    def count(model, cls):
        return sum(isinstance(m, cls) for m in model.modules())

    unet = build_model(tiny_cfg(cfg.clone(), "last_layer"))
    assert unet.head.hypercolumns is None and unet.head.fuse is None
    assert unet.head.predictor.in_channels == 8 and unet.head.output_stride == 4
    hyper = build_model(tiny_cfg(cfg.clone(), "hypercolumns"))
    assert isinstance(hyper.head.hypercolumns, InvertedHypercolumns) and hyper.head.fuse is None
    assert len(hyper.head.hypercolumns.phi) == 3
    full = build_model(tiny_cfg(cfg.clone(), "fuse_block"))
    assert count(full, SqueezeExcitation) == 2 and len(full.head.fuse.body) == 5
    rows = {  # Table 8.5: + ConvFuse, + SE in, + SE out
        (False, True, False): 3,
        (True, True, False): 4,
        (True, True, True): 5,
    }
    for (se_in, conv, se_out), length in rows.items():
        m = build_model(
            tiny_cfg(
                cfg.clone(),
                "fuse_block",
                **{"FUSE.SE_IN": se_in, "FUSE.CONV": conv, "FUSE.SE_OUT": se_out},
            )
        )
        assert len(m.head.fuse.body) == length
        assert count(m, SqueezeExcitation) == se_in + se_out
        if se_in:
            assert isinstance(m.head.fuse.body[0], SqueezeExcitation)
    with pytest.raises(ValueError, match="MODEL.ENCDEC.HEAD"):
        build_model(tiny_cfg(cfg.clone(), "fpn"))
    with pytest.raises(KeyError, match="DECODER_NAME='FPNDecoder'.*UNetDecoder"):
        build_model(tiny_cfg(cfg.clone(), DECODER_NAME="FPNDecoder"))


@pytest.mark.parametrize(
    "decoder,main",
    [("last_layer", "focal"), ("hypercolumns", "cross_entropy"), ("fuse_block", "cross_entropy")],
)
def test_forward_backward(cfg, decoder, main):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cfg, decoder, **{"LOSS.MAIN": main})).train()
    losses = model(_inputs())
    assert set(losses) == {"loss_sem_seg", "loss_fg_dice"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
    assert model.head.predictor.weight.grad.abs().sum() > 0
    assert model.backbone.res5[0].conv1.weight.grad.abs().sum() > 0


def test_all_empty_batch_and_no_fg_loss(cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cfg, "fuse_block")).train()
    batch = _inputs()
    batch[0]["sem_seg"] = torch.zeros(H, W, dtype=torch.long)
    losses = model(batch)
    assert losses["loss_fg_dice"].item() == 0.0 and torch.isfinite(losses["loss_sem_seg"])
    sum(losses.values()).backward()
    cfg.MODEL.ENCDEC.LOSS.FG_WEIGHT = 0.0
    assert set(build_model(cfg).train()(_inputs())) == {"loss_sem_seg"}


def test_missing_feature_is_reported(cfg):
    tiny_cfg(cfg)
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res5"]
    with pytest.raises(ValueError, match="res2"):
        build_model(cfg)


def test_one_by_one_commutes_with_bilinear_upsampling():
    torch.manual_seed(0)
    stage = UNetStage(6, 4, 5, norm="")
    x = torch.randn(2, 6, 3, 5)
    size = (7, 10)
    assert torch.allclose(
        resize_to(stage.match(x), size), stage.match(resize_to(x, size)), atol=1e-5
    )


def test_decoder_stage_order_and_sizes():
    from detectron2.layers import ShapeSpec

    shapes = {f"res{i}": ShapeSpec(channels=4 * i, stride=2**i) for i in range(2, 6)}
    decoder = UNetDecoder(shapes, ["res2", "res3", "res4", "res5"], [12, 10, 6], norm="")
    feats = {f"res{i}": torch.randn(1, 4 * i, 64 // 2**i + 1, 80 // 2**i) for i in range(2, 6)}
    outs = decoder(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [(12, 5, 5), (10, 9, 10), (6, 17, 20)]
    x = InvertedHypercolumns([12, 10, 6], 7)(outs)
    assert x.shape == (1, 7, 17, 20)
    assert MultiLevelFuse(7, reduction=16, norm="")(x).shape == x.shape
    with pytest.raises(ValueError):
        UNetDecoder(shapes, ["res2", "res3", "res4", "res5"], [12, 10], norm="")
    with pytest.raises(ValueError, match="IN_FEATURES.*finest to coarsest"):
        UNetDecoder(shapes, ["res3", "res2", "res4", "res5"], [12, 10, 6], norm="")


@pytest.mark.parametrize("decoder", ["last_layer", "hypercolumns", "fuse_block"])
def test_classifier_input_relu(cfg, decoder):
    """CLASSIFIER_INPUT_RELU=False leaves exactly the last 3x3 conv before the classifier
    without its ReLU (BN only), so the classifier sees signed features; True keeps it."""
    def relu_free_convs(model):
        return [
            name
            for name, m in model.head.named_modules()
            if isinstance(m, Conv2d) and m.kernel_size == (3, 3) and m.activation is None
        ]

    with_relu = build_model(tiny_cfg(cfg.clone(), decoder, CLASSIFIER_INPUT_RELU=True))
    assert relu_free_convs(with_relu) == []
    torch.manual_seed(0)
    signed = build_model(tiny_cfg(cfg.clone(), decoder, CLASSIFIER_INPUT_RELU=False))
    expected = {"last_layer": ["decoder.stages.2.conv2"], "hypercolumns": [], "fuse_block": ["fuse.body.3"]}
    assert relu_free_convs(signed) == expected[decoder]
    if decoder == "last_layer":
        with torch.no_grad():
            x = signed.head.decoder(signed.backbone(torch.randn(2, 3, 64, 64)))[-1]
        assert (x < 0).any()


def test_recipe_decoder_mirrors_the_encoder_to_the_input_resolution():
    """Andrade (2021) §5.3 / eq. 6.1: five decoder stages for ResNet-50 (three with skips,
    two without), every one summed by the hypercolumns; convs before the classifier end in
    ReLU (§6.1.3). The CPU quick config keeps three stages and no final ReLU."""
    from tests.conftest import REPO_ROOT

    recipe = get_panext_cfg(f"{REPO_ROOT}/configs/encdec/siim_acr/proposed.yaml",
                            ["MODEL.DEVICE", "meta"])
    with torch.device("meta"):
        model = build_model(recipe)
    assert model.head.decoder.out_strides == [16, 8, 4, 2, 1]
    assert len(model.head.hypercolumns.phi) == 5 and model.head.output_stride == 1
    assert recipe.MODEL.ENCDEC.CLASSIFIER_INPUT_RELU
    quick = get_panext_cfg(
        f"{REPO_ROOT}/configs/quick_schedules/encdec_proposed_synthetic_cpu.yaml")
    assert len(quick.MODEL.ENCDEC.DECODER_CHANNELS) == 3
    assert not quick.MODEL.ENCDEC.CLASSIFIER_INPUT_RELU


def test_skip_free_stages_double_the_resolution(cfg):
    cfg = tiny_cfg(cfg, "last_layer")
    cfg.MODEL.ENCDEC.DECODER_CHANNELS = [16, 8, 8, 4, 4]
    model = build_model(cfg).eval()
    assert model.head.decoder.out_strides == [16, 8, 4, 2, 1]
    with torch.no_grad():
        out = model(_inputs(with_target=False))
    assert out[0]["sem_seg"].shape == (3, H, W)
    cfg.MODEL.ENCDEC.DECODER_CHANNELS = [16, 8, 8, 4, 4, 4]
    with pytest.raises(ValueError, match="below the input resolution"):
        build_model(cfg)
