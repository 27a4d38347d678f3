import pytest
import torch

from panext_d2.modeling.isb import ISBBranch


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_fcn8_branch_has_the_247073_parameters_of_kolhatkar_2020():
    # docs/DESIGN.md §2: Tables 5.5 / 5.7 / 5.9 = 5 543 558 + n x 247 073 (one class, multiplier 1.0).
    assert _params(ISBBranch((1024, 512, 256), 1, num_skips=2)) == 247_073


def test_fcn16_branch_drops_exactly_the_second_skip_step():
    assert _params(ISBBranch((1024, 512, 256), 1, num_skips=1)) == 247_073 - 24_640


def test_depth_multiplier_075_matches_tables_5_7_and_5_9():
    # (MS-MN0.75 - SB-MN0.75) / (10 - 1) branches = (5 211 360 - 3 358 647) / 9.
    per_branch = (5_211_360 - 3_358_647) // 9
    assert per_branch * 9 == 5_211_360 - 3_358_647
    assert _params(ISBBranch((768, 384, 192), 1)) == per_branch == 205_857


def test_fcn32_and_classes():
    # separable 1024 -> 128 (9 216 + 131 200) + scoring 128 -> K.
    assert _params(ISBBranch((1024,), 1, num_skips=0)) == 9_216 + 131_200 + 129
    assert _params(ISBBranch((1024, 512, 256), 3)) == 247_073 + 2 * 33


def test_layer_structure():
    branch = ISBBranch((1024, 512, 256), 1)
    assert branch.conv.depthwise.bias is None and branch.conv.depthwise.norm is None
    assert branch.conv.pointwise.bias is not None and branch.conv.pointwise.norm is None
    assert [tuple(m.weight.shape) for m in branch.upsample] == [(128, 32, 4, 4), (32, 32, 4, 4)]
    assert [m.stride for m in branch.upsample] == [(2, 2), (2, 2)]
    assert [tuple(m.weight.shape) for m in branch.skip] == [(32, 512, 1, 1), (32, 256, 1, 1)]


@pytest.mark.parametrize("num_skips", [0, 1, 2])
def test_output_resolution(num_skips):
    branch = ISBBranch((16, 8, 4), 2, num_skips=num_skips, conv_dim=8, deconv_dim=4)
    crops = [torch.randn(3, c, 5 * s, 2 * s) for c, s in ((16, 1), (8, 2), (4, 4))]
    out = branch(crops[: 1 + num_skips])
    assert out.shape == (3, 2, 5 * 2**num_skips, 2 * 2**num_skips)
    assert branch.output_stride_factor == 2**num_skips


def test_scoring_commutes_with_bilinear_upsampling():
    # The thesis upsamples to the box size, then scores; scoring first is the same.
    torch.manual_seed(0)
    branch = ISBBranch((16, 8, 4), 3, conv_dim=8, deconv_dim=4)
    torch.nn.init.normal_(branch.predictor.weight)
    torch.nn.init.normal_(branch.predictor.bias)
    crops = [torch.randn(2, c, 3 * s, 2 * s) for c, s in ((16, 1), (8, 2), (4, 4))]
    low = branch(crops)
    up_then_score = branch(crops, output_size=(96, 64))
    score_then_up = torch.nn.functional.interpolate(low, size=(96, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up_then_score, score_then_up, rtol=1e-4, atol=1e-5)


def test_rejects_missing_skip_inputs():
    with pytest.raises(ValueError):
        ISBBranch((1024, 512), 1, num_skips=2)
