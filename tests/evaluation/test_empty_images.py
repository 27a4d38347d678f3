import math

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from panext_d2.evaluation import EVALUATOR_REGISTRY, build_evaluator
from panext_d2.evaluation.empty_images import EmptyImagesEvaluator, image_statistics, summarize

K = 3  # background, bicycle, car


def _cases():
    """(prediction, ground truth) 2 x 4 label maps; 255 = ignored."""
    z = np.zeros((2, 4), dtype=np.int64)
    cases = []
    # 0: car; GT 4 px, pred 2 of them + 2 others -> car I=2 U=6. Predicted set = GT set.
    g, p = z.copy(), z.copy()
    g[0, :] = 2
    p[0, :2] = 2
    p[1, :2] = 2
    cases.append((p, g))
    # 1: empty GT, pred one bicycle pixel -> false-positive image
    p = z.copy()
    p[1, 3] = 1
    cases.append((p, z.copy()))
    # 2: empty GT, empty pred -> true negative (one ignored pixel)
    g = z.copy()
    g[0, 0] = 255
    cases.append((z.copy(), g))
    # 3: bicycle GT 2 px, empty pred -> false-negative image, bicycle I=0 U=2
    g = z.copy()
    g[1, 2:] = 1
    cases.append((z.copy(), g))
    # 4: bicycle + car GT, pred bicycle exact, car predicted on an ignored pixel and 1 of 2
    g, p = z.copy(), z.copy()
    g[0, 0] = 1
    p[0, 0] = 1
    g[1, :2] = 2
    p[1, 0] = 2
    g[1, 3] = 255
    p[1, 3] = 2
    cases.append((p, g))
    return cases


def test_image_statistics():
    p, g = _cases()[4]
    stats = image_statistics(p, g, K)
    # rows: intersection, union, gt present, pred present; columns: bicycle, car
    assert stats.tolist() == [[1, 1], [1, 2], [1, 1], [1, 1]]
    with pytest.raises(ValueError):
        image_statistics(p[:, :3], g, K)


def test_summary_by_hand():
    stats = np.stack([image_statistics(p, g, K) for p, g in _cases()])
    r = summarize(stats, "dataset", ["bicycle", "car"])
    # non-empty images 0, 3, 4. bicycle: I = 0 + 1, U = 2 + 1; car: I = 2 + 1, U = 6 + 2
    assert r["IoU_nonempty-bicycle"] == pytest.approx(100 * 1 / 3)
    assert r["IoU_nonempty-car"] == pytest.approx(100 * 3 / 8)
    assert r["mIoU_nonempty"] == pytest.approx(100 * (1 / 3 + 3 / 8) / 2)
    # P = 3 (TP 2: images 0, 4), N = 2 (TN 1: image 2)
    assert r["TPR"] == pytest.approx(100 * 2 / 3) and r["TNR"] == pytest.approx(50.0)
    assert r["bal_acc"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    # exact class-set match: images 0, 2, 4
    assert r["multiclass_acc"] == pytest.approx(60.0)
    assert (r["num_nonempty"], r["num_empty"]) == (3, 2)

    img = summarize(stats, "image", ["bicycle", "car"])
    # per image: bicycle IoU defined on images 3 (0) and 4 (1); car on images 0 (2/6) and 4 (1/2)
    assert img["IoU_nonempty-bicycle"] == pytest.approx(50.0)
    assert img["IoU_nonempty-car"] == pytest.approx(100 * (1 / 3 + 1 / 2) / 2)
    assert img["bal_acc"] == r["bal_acc"]


def test_degenerate_sets():
    only_empty = np.stack([image_statistics(p, g, K) for p, g in _cases()[1:3]])
    r = summarize(only_empty)
    assert math.isnan(r["mIoU_nonempty"]) and math.isnan(r["TPR"])
    assert r["bal_acc"] == pytest.approx(50.0)  # TNR alone
    # a class never in GT nor prediction of non-empty images is left out of the mean
    p, g = _cases()[0]
    assert summarize(image_statistics(p, g, K)[None])["mIoU_nonempty"] == pytest.approx(100 * 2 / 6)
    assert math.isnan(summarize(np.zeros((0, 4, 2)))["bal_acc"])


@pytest.fixture
def dataset(tmp_path):
    name = "encdec_test_empty_images"
    records = []
    for i, (_, g) in enumerate(_cases()):
        Image.fromarray(g.astype(np.uint8)).save(tmp_path / f"{i}.png")
        records.append(
            {
                "file_name": f"img{i}.jpg",
                "sem_seg_file_name": str(tmp_path / f"{i}.png"),
                "height": 2,
                "width": 4,
                "image_id": i,
            }
        )
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(
        stuff_classes=["background", "bicycle", "car"],
        ignore_label=255,
        evaluator_type="empty_images",
    )
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_evaluator_end_to_end(cfg, dataset, tmp_path):
    assert "empty_images" in EVALUATOR_REGISTRY
    evaluator = build_evaluator(cfg, dataset, str(tmp_path / "out"))
    assert isinstance(evaluator, EmptyImagesEvaluator)
    evaluator.reset()
    for i, (p, _) in enumerate(_cases()):
        logits = torch.nn.functional.one_hot(torch.as_tensor(p), K).permute(2, 0, 1).float()
        evaluator.process([{"file_name": f"img{i}.jpg"}], [{"sem_seg": logits}])
    r = evaluator.evaluate()["empty_images"]
    assert r["mIoU_nonempty"] == pytest.approx(100 * (1 / 3 + 3 / 8) / 2)
    assert r["multiclass_acc"] == pytest.approx(60.0)
    assert (tmp_path / "out" / "empty_images_evaluation.json").exists()
    cfg.TEST.EMPTY_IMAGES.IOU_MODE = "mean"
    with pytest.raises(ValueError):
        build_evaluator(cfg, dataset, None)
