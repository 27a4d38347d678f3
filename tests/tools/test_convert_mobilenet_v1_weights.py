import torch

from panext_d2.modeling.backbone.mobilenet_v1 import MobileNetV1
from tests.tools.conftest import load_script


def _tool():
    return load_script("tools/convert_mobilenet_v1_weights.py")


def test_timm_conversion_gives_equal_features(tmp_path):
    import timm

    torch.manual_seed(0)
    timm_model = timm.create_model("mobilenetv1_100", pretrained=False).eval()
    # Non-trivial BN statistics, so a wrong mapping of norm layers shows.
    for name, buf in timm_model.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
    for name, p in timm_model.named_parameters():
        if "bn" in name:
            p.data.uniform_(0.5, 1.5) if name.endswith("weight") else p.data.normal_(0, 0.1)
    source, target = tmp_path / "timm.pth", tmp_path / "d2.pth"
    torch.save(timm_model.state_dict(), source)

    assert _tool().main([str(source), str(target)]) == 0
    checkpoint = torch.load(target, weights_only=True)
    weights = {k[len("backbone.") :]: v for k, v in checkpoint["model"].items()}

    ours = MobileNetV1(out_features=["conv5", "conv11", "conv13"]).eval()
    missing, unexpected = ours.load_state_dict(weights, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)

    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected = timm_model.forward_intermediates(x, indices=[2, 3, 4], intermediates_only=True)
        got = ours(x)
    for name, ref in zip(["conv5", "conv11", "conv13"], expected):
        assert got[name].shape == ref.shape
        torch.testing.assert_close(got[name], ref, atol=1e-4, rtol=1e-4)


def test_conversion_rejects_other_models():
    import pytest

    with pytest.raises(ValueError):
        _tool().convert_timm_mobilenet_v1({"stem.0.weight": torch.zeros(1)})
