"""FaPN decoder (Andrade (2021) §5.6 / §8.4, Huang et al. 2021): shapes, the FSM and FAM against
hand computations, odd sizes, parameter count, and inside EncDecSegmentor."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model

from panext_d2.modeling.encdec import build_encdec_decoder
from panext_d2.modeling.encdec.fapn import (
    FaPNDecoder,
    FeatureAlignmentModule,
    FeatureSelectionModule,
)

from .test_encdec_model import H, W, _inputs, tiny_cfg

SHAPES = {f"res{i}": ShapeSpec(channels=4 * i, stride=2**i) for i in range(2, 6)}
IN_FEATURES = ["res2", "res3", "res4", "res5"]


def _features(h, w, n=2):
    g = torch.Generator().manual_seed(1)
    return {
        f"res{i}": torch.randn(n, 4 * i, -(-h // 2**i), -(-w // 2**i), generator=g)
        for i in range(2, 6)
    }


def fapn_cfg(cfg, decoder="last_layer", channels=16, groups=4, **encdec):
    tiny_cfg(cfg, decoder, DECODER_NAME="FaPNDecoder", **encdec)
    cfg.MODEL.ENCDEC.FAPN.CHANNELS = channels
    cfg.MODEL.ENCDEC.FAPN.DEFORMABLE_GROUPS = groups
    return cfg


def test_outputs_order_shapes_strides():
    torch.manual_seed(0)
    decoder = FaPNDecoder(SHAPES, IN_FEATURES, channels=8, deformable_groups=2)
    assert decoder.out_strides == [32, 16, 8, 4]
    assert decoder.out_channels == [8, 8, 8, 8]
    assert decoder.out_features == ["p5", "p4", "p3", "p2"]
    assert decoder.last_conv is None
    outs = decoder(_features(64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(2, 3), (4, 6), (8, 12), (16, 24)]
    assert all(o.shape[:2] == (2, 8) for o in outs)
    # HEAD "last_layer" reads the finest map only: P2 alone, with the same top-down path.
    finest = FaPNDecoder(SHAPES, IN_FEATURES, channels=8, deformable_groups=2, finest_only=True)
    finest.selection.load_state_dict(decoder.selection.state_dict())
    finest.alignment.load_state_dict(decoder.alignment.state_dict())
    assert len(finest.output_convs) == 1
    assert finest.out_strides == [4] and finest.out_channels == [8]
    assert finest.out_features == ["p2"]
    finest.output_convs[0].load_state_dict(decoder.output_convs[3].state_dict())
    (only,) = finest(_features(64, 96))
    assert torch.equal(only, outs[-1])


def test_odd_input_sizes():
    """72x88 is not a multiple of 32: res5 is 3x3 (ceil), res4 5x6, res3 9x11, res2 18x22."""
    torch.manual_seed(0)
    decoder = FaPNDecoder(SHAPES, IN_FEATURES, channels=8, deformable_groups=2)
    feats = _features(72, 88)
    outs = decoder(feats)
    assert [tuple(o.shape[-2:]) for o in outs] == [
        tuple(feats[f].shape[-2:]) for f in ["res5", "res4", "res3", "res2"]
    ]
    assert all(torch.isfinite(o).all() for o in outs)


def test_fsm_matches_hand_computation():
    torch.manual_seed(0)
    fsm = FeatureSelectionModule(6, 5)
    with torch.no_grad():
        for p in fsm.parameters():
            p.normal_()
    x = torch.randn(2, 6, 7, 9)
    pooled = x.mean(dim=(2, 3))  # (N, C)
    att = torch.sigmoid(pooled @ fsm.att.weight.view(6, 6).T)  # no bias
    selected = x + x * att[:, :, None, None]
    expected = torch.einsum("oc,nchw->nohw", fsm.proj.weight.view(5, 6), selected)
    expected = expected + fsm.proj.bias.view(1, 5, 1, 1)
    assert fsm.att.bias is None
    assert torch.allclose(fsm(x), expected, atol=1e-5)


@pytest.mark.parametrize("impl", ["fast", "torchvision"])
def test_fam_starts_as_identity_alignment(impl):
    """Zero offset conv -> offsets 0 and modulation 2 * sigmoid(0) = 1: the FAM is then
    relu(conv3x3(up(coarse))) + lateral with the deformable conv's weight."""
    torch.manual_seed(0)
    fam = FeatureAlignmentModule(8, deformable_groups=4, deform_impl=impl)
    lateral = torch.randn(2, 8, 9, 11)
    coarse = torch.randn(2, 8, 5, 6)
    up = F.interpolate(coarse, size=(9, 11), mode="bilinear", align_corners=False)
    offset, mask = fam.offsets_and_mask(lateral, up)
    assert offset.shape == (2, 2 * 4 * 9, 9, 11) and mask.shape == (2, 4 * 9, 9, 11)
    assert (offset == 0).all() and (mask == 1).all()
    expected = F.relu(F.conv2d(up, fam.dcn.weight, fam.dcn.bias, padding=1)) + lateral
    assert torch.allclose(fam(lateral, coarse), expected, atol=1e-5)


def test_fam_offsets_move_the_sampling():
    """Non-zero offsets / masks change the result, which is torchvision's modulated deformable
    conv of the upsampled map with the predicted offsets and 2 * sigmoid(mask logits)."""
    torch.manual_seed(0)
    fam = FeatureAlignmentModule(8, deformable_groups=2, deform_impl="fast")
    lateral = torch.randn(1, 8, 8, 10)
    coarse = torch.randn(1, 8, 4, 5)
    before = fam(lateral, coarse)
    with torch.no_grad():
        fam.offset.weight.normal_(std=0.1)
        fam.offset.bias.normal_()
    after = fam(lateral, coarse)
    assert not torch.allclose(before, after, atol=1e-3)
    up = F.interpolate(coarse, size=(8, 10), mode="bilinear", align_corners=False)
    pred = fam.offset(torch.cat([lateral, 2 * up], dim=1))
    expected = torchvision.ops.deform_conv2d(
        up,
        pred[:, : 2 * 2 * 9],
        fam.dcn.weight,
        fam.dcn.bias,
        padding=1,
        mask=2 * torch.sigmoid(pred[:, 2 * 2 * 9 :]),
    )
    assert torch.allclose(after, F.relu(expected) + lateral, atol=1e-4)


def test_parameter_count():
    c, g = 8, 2
    decoder = FaPNDecoder(SHAPES, IN_FEATURES, channels=c, deformable_groups=g)
    ins = [SHAPES[f].channels for f in IN_FEATURES]
    fsm = sum(ci * ci + ci * c + c for ci in ins)  # attention (no bias) + projection
    fam = (len(ins) - 1) * (2 * c * 27 * g + 27 * g + 9 * c * c + c)  # offset conv + DCN
    out = len(ins) * (9 * c * c + c)
    assert sum(p.numel() for p in decoder.parameters()) == fsm + fam + out
    # With a norm the projection and output convs drop their bias and gain the norm's affine.
    normed = FaPNDecoder(SHAPES, IN_FEATURES, channels=c, norm="BN", deformable_groups=g)
    assert sum(p.numel() for p in normed.parameters()) == fsm + fam + out + len(ins) * 2 * c
    finest = FaPNDecoder(SHAPES, IN_FEATURES, channels=c, deformable_groups=g, finest_only=True)
    assert sum(p.numel() for p in finest.parameters()) == fsm + fam + 9 * c * c + c


def test_config_errors(cfg):
    with pytest.raises(ValueError, match="DEFORMABLE_GROUPS"):
        FaPNDecoder(SHAPES, IN_FEATURES, channels=12, deformable_groups=8)
    with pytest.raises(ValueError, match="IN_FEATURES.*finest to coarsest"):
        FaPNDecoder(SHAPES, ["res3", "res2"], channels=8, deformable_groups=2)
    with pytest.raises(ValueError, match="IN_FEATURES.*missing \\['p6'\\]"):
        FaPNDecoder(SHAPES, ["res5", "p6"], channels=8, deformable_groups=2)
    with pytest.raises(ValueError, match="DEFORM_IMPL"):
        FaPNDecoder(SHAPES, IN_FEATURES, channels=8, deformable_groups=2, deform_impl="cuda")
    fapn_cfg(cfg)
    cfg.MODEL.ENCDEC.FAPN.DEFORM_IMPL = "torchvision"
    decoder = build_encdec_decoder(cfg, SHAPES)
    assert isinstance(decoder, FaPNDecoder)
    assert all(fam.dcn.impl == "torchvision" for fam in decoder.alignment)


def _fapn_params(model):
    return {n: p for n, p in model.named_parameters() if n.startswith("head.decoder.")}


@pytest.mark.parametrize("decoder", ["last_layer", "fuse_block"])
def test_segmentor_trains_and_infers(cfg, decoder):
    torch.manual_seed(0)
    model = build_model(fapn_cfg(cfg, decoder))
    assert isinstance(model.head.decoder, FaPNDecoder)
    assert (model.head.hypercolumns is None) == (decoder == "last_layer")
    assert model.head.decoder.finest_only == (decoder == "last_layer")
    num_outputs = 1 if decoder == "last_layer" else 4
    assert len(model.head.decoder.out_strides) == num_outputs
    assert model.head.output_stride == 4
    batch = _inputs()
    model.train()
    losses = model(batch)
    sum(losses.values()).backward()
    params = _fapn_params(model)
    # FSM 3 (att, proj w/b), FAM 4 (offset w/b, DCN w/b), output conv 2 (w/b).
    assert len(params) == 4 * 3 + 3 * 4 + num_outputs * 2
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = sum(model(batch).values())
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    with torch.no_grad():
        final = sum(model(batch).values()).item()
    assert final < history[0], history + [final]

    model.eval()
    with torch.no_grad():
        out = model(
            _inputs(with_target=False)
            + [{"image": torch.zeros(3, 72, 88), "height": 72, "width": 88}]
        )
    assert [o["sem_seg"].shape for o in out] == [(3, H, W), (3, H, W), (3, 72, 88)]
    assert all(torch.isfinite(o["sem_seg"]).all() for o in out)
