"""ImageClassifier, TwoStageSegmentor, the image-level evaluator and the non-empty-only
sampling of the two-stage baseline (Andrade (2021) §8.2)."""
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from panext_d2.data.samplers import ForegroundBalancedSampler
from panext_d2.evaluation.empty_images import summarize
from panext_d2.evaluation.image_level import ImageLevelEvaluator
from panext_d2.modeling.encdec import EncDecSegmentor, ImageClassifier, TwoStageSegmentor
from panext_d2.modeling.encdec.classifier import image_level_targets

from .test_encdec_model import tiny_cfg

H, W = 64, 64


def classifier_cfg(cfg, mode="binary", num_fg=2):
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.IMAGE_CLASSIFIER.MODE = mode
    cfg.MODEL.IMAGE_CLASSIFIER.NUM_FOREGROUND_CLASSES = num_fg
    cfg.INPUT.SEMANTIC.SIZE = (32, 32)
    return cfg


def _batch(classes):
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randint(0, 256, (3, H, W), generator=g).float(), "height": H,
         "width": W, "foreground_classes": c, "file_name": f"{i}.png"}
        for i, c in enumerate(classes)
    ]


def test_image_level_targets():
    assert image_level_targets([[], [2], [1, 2]], "binary", 2).flatten().tolist() == [0, 1, 1]
    multi = image_level_targets([[], [2], [1, 2]], "multilabel", 2)
    assert multi.tolist() == [[0, 0], [0, 1], [1, 1]]
    with pytest.raises(ValueError, match="outside"):
        image_level_targets([[3]], "multilabel", 2)


@pytest.mark.parametrize("mode,outputs", [("binary", 1), ("multilabel", 2)])
def test_classifier_train_and_inference(cfg, mode, outputs):
    torch.manual_seed(0)
    model = build_model(classifier_cfg(cfg, mode))
    assert isinstance(model, ImageClassifier) and model.linear.out_features == outputs
    losses = model(_batch([[], [2], [1, 2]]))
    assert set(losses) == {"loss_cls"} and torch.isfinite(losses["loss_cls"])
    losses["loss_cls"].backward()
    assert model.linear.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(_batch([[], [1]]))
    assert out[0]["foreground_scores"].shape == (outputs,)
    with pytest.raises(KeyError, match="foreground_classes"):
        model.train()(_batch([[]])[:1] and [{"image": torch.zeros(3, H, W)}])


def test_classifier_decision():
    scores = torch.tensor([0.2, 0.7])
    model = ImageClassifier.__new__(ImageClassifier)
    model.threshold = 0.5
    assert ImageClassifier.decide(model, scores)["foreground_classes"] == [2]
    assert ImageClassifier.decide(model, torch.tensor([0.1, 0.4]))["is_foreground"] is False


def test_foreground_share_one_samples_non_empty_images_only():
    flags = [True] * 5 + [False] * 20
    sampler = iter(ForegroundBalancedSampler(flags, 4, foreground_share=1.0, seed=0))
    picks = [next(sampler) for _ in range(40)]
    assert set(picks) == set(range(5))


class _FixedClassifier(torch.nn.Module):
    """Stands in for ImageClassifier.logits: a fixed score per image (by its first pixel)."""

    device = torch.device("cpu")

    def logits(self, images):
        return torch.stack([x[0, 0, :1] for x in images]).float()


def test_two_stage_gates_the_segmenter(cfg):
    torch.manual_seed(0)
    segmenter = build_model(tiny_cfg(cfg, "last_layer")).eval()
    model = TwoStageSegmentor(
        classifier=_FixedClassifier(), segmenter=segmenter, num_classes=3, threshold=0.5
    ).eval()
    batch = _batch([[], [1], []])
    batch[0]["image"][0, 0, 0] = -5.0  # logit < 0: score < 0.5, empty
    batch[1]["image"][0, 0, 0] = 5.0
    batch[2]["image"][0, 0, 0] = -1.0
    calls = []
    segmenter.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    with torch.no_grad():
        out = model(batch)
    assert calls == [1]  # one sub-batch with the positive image only
    assert out[0]["sem_seg"].shape == (3, H, W)
    assert (out[0]["sem_seg"].argmax(0) == 0).all() and (out[2]["sem_seg"].argmax(0) == 0).all()
    with torch.no_grad():
        expected = segmenter([batch[1]])[0]["sem_seg"]
    torch.testing.assert_close(out[1]["sem_seg"], expected)
    with pytest.raises(RuntimeError, match="inference-only"):
        model.train()(batch)


def test_two_stage_builds_from_one_config_and_loads_an_assembled_checkpoint(cfg, tmp_path):
    """No file is read while building; tools/assemble_two_stage.py joins the two trained
    checkpoints, which load through the checkpointer; a missing one names the command."""
    import builtins
    import importlib.util
    import os

    from panext_d2 import get_panext_cfg
    from panext_d2.engine import load_for_evaluation
    from tests.conftest import REPO_ROOT

    torch.manual_seed(0)
    classifier = build_model(classifier_cfg(get_panext_cfg()))
    DetectionCheckpointer(classifier, str(tmp_path)).save("classifier")
    segmenter = build_model(tiny_cfg(get_panext_cfg(), "last_layer"))
    DetectionCheckpointer(segmenter, str(tmp_path)).save("segmenter")

    cfg = tiny_cfg(cfg, "last_layer")
    cfg.MODEL.META_ARCHITECTURE = "TwoStageSegmentor"
    cfg.MODEL.IMAGE_CLASSIFIER.NUM_FOREGROUND_CLASSES = 2
    cfg.MODEL.TWO_STAGE.CLASSIFIER_INPUT_SIZE = (32, 32)
    opened = []
    real_open = builtins.open
    builtins.open = lambda *a, **k: opened.append(a[0]) or real_open(*a, **k)
    try:
        model = build_model(cfg)
    finally:
        builtins.open = real_open
    assert opened == []  # no hidden I/O in construction
    assert isinstance(model.segmenter, EncDecSegmentor)
    assert model.classifier.input_size == (32, 32)

    with pytest.raises(FileNotFoundError, match="assemble_two_stage.py"):
        load_for_evaluation(model, str(tmp_path / "two_stage.pth"), str(tmp_path),
                            resume=False, allow_random=False)
    spec = importlib.util.spec_from_file_location(
        "assemble_two_stage", os.path.join(REPO_ROOT, "tools", "assemble_two_stage.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["--classifier", str(tmp_path / "classifier.pth"), "--segmenter",
               str(tmp_path / "segmenter.pth"), "--output", str(tmp_path / "two_stage.pth")])
    load_for_evaluation(model, str(tmp_path / "two_stage.pth"), str(tmp_path), resume=False,
                        allow_random=False)
    for built, saved in ((model.classifier, classifier), (model.segmenter, segmenter)):
        for key, value in saved.state_dict().items():
            torch.testing.assert_close(built.state_dict()[key], value)
    with torch.no_grad():
        out = model.eval()(_batch([[], [1]]))
    assert [o["sem_seg"].shape for o in out] == [(3, H, W)] * 2


def test_image_level_evaluator_matches_summarize(monkeypatch):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = "_two_stage_image_level_test"
    gt = [[], [1], [2], [1, 2], []]
    pred = [[], [1], [1], [1, 2], [2]]
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(
        name, lambda: [{"file_name": f"{i}", "foreground_classes": c} for i, c in enumerate(gt)]
    )
    MetadataCatalog.get(name).set(stuff_classes=["background", "a", "b"])
    for binary in (False, True):
        evaluator = ImageLevelEvaluator(name, binary=binary, distributed=False)
        evaluator.reset()
        evaluator.process(
            [{"file_name": f"{i}"} for i in range(5)],
            [{"foreground_classes": p, "is_foreground": bool(p)} for p in pred],
        )
        results = evaluator.evaluate()["image_level"]
        # 3 positives all detected; 2 negatives, 1 false alarm: (1 + 1/2) / 2
        assert results["bal_acc"] == pytest.approx(75.0)
        assert results["multiclass_acc"] == pytest.approx(80.0 if binary else 60.0)
    stats = np.zeros((1, 4, 2), dtype=np.int64)
    assert summarize(stats)["num_empty"] == 1
