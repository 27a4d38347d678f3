"""tools/benchmark.py and the measuring helpers of panext_d2/utils and panext_d2/engine/benchmark.py."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from torch import nn

from panext_d2.utils.batchnorm import calibrate_batchnorm, fold_batchnorm
from panext_d2.utils.isolation import run_isolated
from panext_d2.utils.model_inputs import benchmark_image, count_detections, make_inputs
from panext_d2.utils.model_size import count_parameters
from panext_d2.utils.timing import summarize_times
from tests.tools.conftest import load_script, tiny_semseg_yaml

from tests.conftest import REPO_ROOT as REPO  # noqa: E402

def load_tool(name):
    return load_script(f"tools/{name}.py")


def randomize_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters, so that folding is tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            n = m.running_mean.numel()
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


# ----------------------------------------------------------------------------- parameters
def test_count_parameters_hand_computed():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),  # 4*3*3*3 + 4 = 112 trainable
        nn.BatchNorm2d(4),  # 8 trainable, 8 running statistics
        FrozenBatchNorm2d(4),  # buffers only: 8 running statistics, no parameters
        nn.Flatten(),
        nn.Linear(4, 2),  # 10, frozen below
    )
    for p in model[4].parameters():
        p.requires_grad_(False)
    counts = count_parameters(model)
    assert counts == {"trainable": 120, "total": 130, "bn_stats": 16,
                      "trainable_plus_bn_stats": 136}


def test_summarize_times():
    stats = summarize_times([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["median"] == 3.0 and stats["mean"] == 22.0 and stats["runs"] == 5
    assert stats["p10"] == pytest.approx(1.4) and stats["p90"] == pytest.approx(61.6)


def test_add_ratios_relative_to_first():
    results = [{"metrics": {"a": 2.0, "b": None}}, {"metrics": {"a": 3.0, "b": 1.0}}]
    load_tool("benchmark").add_ratios(results)
    assert results[0]["ratios"] == {"a": 1.0, "b": None}
    assert results[1]["ratios"] == {"a": 1.5, "b": None}


# ----------------------------------------------------------------------------- BN folding
class AttributePair(nn.Module):
    """conv/bn as sibling attributes (only the traced search finds them), plus a conv whose
    output also feeds a skip connection (must not be folded)."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.bn2 = nn.BatchNorm2d(8)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.conv2(x)
        return self.bn2(y) + y


@torch.no_grad()
def test_fold_batchnorm_patterns_match_unfolded():
    torch.manual_seed(0)
    model = nn.Sequential(
        Conv2d(3, 8, 3, padding=1, bias=False, norm=nn.BatchNorm2d(8), activation=nn.ReLU()),
        Conv2d(8, 8, 3, padding=1, groups=2, bias=False, norm=FrozenBatchNorm2d(8)),
        nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),
        AttributePair(in_channels=8),
    )
    randomize_bn(model).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)

    folded = fold_batchnorm(model, example_inputs=x)
    assert sorted(folded) == ["0.norm", "1.norm", "3", "5.bn1"]
    assert model[0].norm is None and isinstance(model[3], nn.Identity)
    assert isinstance(model[5].bn1, nn.Identity) and isinstance(model[5].bn2, nn.BatchNorm2d)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_fold_batchnorm_without_inputs_leaves_attribute_pairs():
    model = randomize_bn(AttributePair()).eval()
    assert fold_batchnorm(model) == []
    assert isinstance(model.bn1, nn.BatchNorm2d)


@torch.no_grad()
def test_fold_batchnorm_detectron2_model(tmp_path):
    from panext_d2 import Trainer, get_panext_cfg

    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_semseg_yaml(fpn=16))
    cfg = get_panext_cfg(str(path))
    model = randomize_bn(Trainer.build_model(cfg)).eval()
    inputs = make_inputs(benchmark_image(64, 64))
    expected = model(inputs)[0]["sem_seg"]
    folded = fold_batchnorm(model, example_inputs=inputs)
    assert len(folded) == 20  # ResNet-18: stem + 2 per basic block x 8 + 3 shortcuts
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(inputs)[0]["sem_seg"], expected, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture
def tiny_semseg_dataset(tmp_path):
    """Two 64x64 images with semantic labels, registered as a dataset."""
    name = f"bench_test_semseg_{os.getpid()}"
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(2):
        image, label = tmp_path / f"img{i}.png", tmp_path / f"sem{i}.png"
        cv2.imwrite(str(image), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(label), rng.integers(0, 3, (64, 64), dtype=np.uint8))
        dicts.append({"file_name": str(image), "sem_seg_file_name": str(label),
                      "height": 64, "width": 64, "image_id": i})
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(stuff_classes=["a", "b", "c"], ignore_label=255)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


@pytest.mark.slow
def test_benchmark_cli_two_configs_writes_json(tmp_path, tiny_semseg_dataset):
    small, wide = tmp_path / "small_fpn.yaml", tmp_path / "wide_fpn.yaml"
    small.write_text(tiny_semseg_yaml(fpn=16))
    wide.write_text(tiny_semseg_yaml(fpn=32))
    out = tmp_path / "results.json"
    load_tool("benchmark").main([
        "--config-file", str(small), f"{wide}", "--runs", "2", "--warmup", "1",
        "--height", "64", "--width", "64", "--batch-size", "2", "--threads", "1",
        "--no-isolate", "--train-iters", "2", "--train-warmup", "0", "--quiet",
        "--output", str(out), "--opts", "DATASETS.TRAIN", f"('{tiny_semseg_dataset}',)",
    ])
    report = json.loads(out.read_text())
    assert {"cpu_model", "torch_threads", "torch_version", "device"} <= set(report["machine"])
    assert report["machine"]["torch_threads"] == 1
    first, second = report["results"]
    assert [first["name"], second["name"]] == ["small_fpn", "wide_fpn"]
    for r in (first, second):
        assert r["latency_s"]["runs"] == 2
        assert 0 < r["latency_s"]["p10"] <= r["latency_s"]["median"] <= r["latency_s"]["p90"]
        assert r["throughput_images_per_s"] > 0
        assert r["flops"]["gflops"] > 0
        assert r["memory"]["peak_bytes"] > 0 and r["memory"]["peak_delta_bytes"] >= 0
        assert r["retained_freed_memory"] is False
        assert r["train_iter_s"]["runs"] == 2 and r["train_iter_s"]["median"] > 0
        params = r["parameters"]
        assert params["trainable_plus_bn_stats"] == params["trainable"] + params["bn_stats"]
        assert set(r["ratios"]) == set(r["metrics"])
    assert all(v == 1.0 for v in first["ratios"].values() if v is not None)
    assert first["ratios"]["latency_median_s"] == 1.0
    assert second["ratios"]["params_trainable"] == pytest.approx(
        second["parameters"]["trainable"] / first["parameters"]["trainable"])
    assert second["ratios"]["params_trainable"] > 1.0


def test_benchmark_cli_model_arguments(tmp_path):
    tool = load_tool("benchmark")
    a, b = tmp_path / "a.yaml", tmp_path / "sub" / "a.yaml"
    b.parent.mkdir()
    a.write_text("")
    b.write_text("")
    args = tool.parse_args(["--config-file", str(a), "--weights", "w.pth", f"{b}:v.pth", str(a)])
    assert [(m["config_file"], m["weights"]) for m in args.models] == [
        (str(a), "w.pth"), (str(b), "v.pth"), (str(a), None)]
    assert tool.model_names(args.models) == ["a", "a#2", "a#3"]
    assert args.isolate is True
    with pytest.raises(SystemExit):
        tool.parse_args(["--weights", "w.pth"])


_RSS_DROP_AFTER_FREE = """
import sys, torch
from panext_d2.utils.memory import _proc_status_kib, retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
block = torch.ones(4 << 20)  # 16 MiB: glibc maps it apart and unmaps it on free by default
before = _proc_status_kib("VmRSS")
del block
print(before - _proc_status_kib("VmRSS"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "retain"])
def test_retain_freed_memory_keeps_freed_blocks_resident(mode):
    out = subprocess.run([sys.executable, "-c", _RSS_DROP_AFTER_FREE, mode], capture_output=True,
                         text=True, check=True, cwd=REPO)
    dropped_kib = int(out.stdout.strip().splitlines()[-1])
    if mode == "retain":
        assert dropped_kib < 4 << 10
    else:
        assert dropped_kib > 12 << 10


@pytest.mark.slow
def test_run_isolated_runs_in_another_process():
    assert run_isolated(os.getpid) != os.getpid()


class _DictInputNet(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN on ``inputs[i]["image"]``, detectron2-style."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.Conv2d(4, 5, 1), nn.BatchNorm2d(5, momentum=0.3))

    def forward(self, inputs):
        return self.body(torch.stack([x["image"].float() for x in inputs]))


def test_calibrate_batchnorm_sets_the_statistics_of_the_input():
    torch.manual_seed(0)
    net = _DictInputNet()
    inputs = [{"image": torch.rand(3, 12, 12) * 100} for _ in range(2)]
    assert calibrate_batchnorm(net, inputs) == 2
    assert not net.training and not any(m.training for m in net.modules())
    with torch.no_grad():
        y = net.body[0](torch.stack([x["image"] for x in inputs]))
    torch.testing.assert_close(net.body[1].running_mean, y.mean((0, 2, 3)))
    torch.testing.assert_close(net.body[1].running_var, y.var((0, 2, 3), unbiased=False))
    with torch.no_grad():
        out = net(inputs)  # inference with the calibrated statistics: unit scale per channel
    torch.testing.assert_close(out.mean((0, 2, 3)), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.var((0, 2, 3), unbiased=False), torch.ones(5), atol=1e-3, rtol=0)


@pytest.mark.slow
def test_calibrate_batchnorm_gives_random_mask_rcnn_detections():
    """Random ResNet-50 weights with FrozenBatchNorm at identity leave Mask R-CNN without a
    single detection; calibrated, it detects like a trained model (boxes scored ~0.5)."""
    from panext_d2 import Trainer, get_panext_cfg

    cfg = get_panext_cfg(os.path.join(REPO, "configs/mask_rcnn_R50_FPN_1x.yaml"), ["MODEL.DEVICE", "cpu"])
    model = Trainer.build_model(cfg).eval()
    inputs = [{"image": torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)}]
    with torch.no_grad():
        assert count_detections(model(inputs)) == 0
    assert calibrate_batchnorm(model, inputs) > 0
    with torch.no_grad():
        assert count_detections(model(inputs)) >= 20


def test_calibrate_batchnorm_runs_the_own_modules_of_lazily_folded_models():
    """SSD folds its BatchNorms into a copy at the first inference: calibration must reach
    the model's own BatchNorms, and the folded copy made afterwards must use them."""
    from panext_d2 import Trainer, get_panext_cfg

    cfg = get_panext_cfg(os.path.join(REPO, "configs/ssd_isb/ssd_isb_sb_mn1.0_fcn8_person.yaml"), [
        "MODEL.DEVICE", "cpu", "MODEL.MOBILENET.DEPTH_MULTIPLIER", "0.25"])
    model = Trainer.build_model(cfg).eval()
    assert model.fold_bn_test
    inputs = [{"image": torch.randint(0, 256, (3, 640, 640), dtype=torch.uint8)}]
    with torch.no_grad():
        raw = model.backbone(model.preprocess_image(inputs).tensor)["conv13"]
    assert raw.abs().max() < 1e-6  # random TF-style initialisation: vanishing activations
    calibrate_batchnorm(model, inputs)
    assert model.fold_bn_test and not model.training
    with torch.no_grad():
        own = model.backbone(model.preprocess_image(inputs).tensor)["conv13"]
        backbone, _ = model.feature_modules()  # the folded copy, made now
        folded = backbone(model.preprocess_image(inputs).tensor)["conv13"]
    assert 0.1 < own.std() < 10
    torch.testing.assert_close(folded, own, rtol=1e-3, atol=1e-4)


def test_count_detections():
    from detectron2.structures import Instances

    outputs = [{"instances": Instances((4, 4), scores=torch.zeros(n))} for n in (3, 5)]
    assert count_detections(outputs) == 4
    assert count_detections([{"sem_seg": torch.zeros(1)}]) is None
