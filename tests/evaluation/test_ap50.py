import contextlib
import io
import json
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from panext_d2 import get_panext_cfg
from panext_d2.evaluation import EVALUATOR_REGISTRY, build_evaluator
from panext_d2.evaluation.ap50 import AP50_METRICS, COCOAP50Evaluator

H, W = 240, 320
CATS = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
# (image, category id, XYXY): small (< 32^2), medium and large boxes of both classes.
GT = [
    (1, 1, (10, 10, 30, 30)), (1, 1, (50, 40, 110, 100)), (1, 18, (150, 20, 300, 200)),
    (2, 1, (0, 0, 200, 150)), (2, 1, (220, 100, 240, 125)), (2, 18, (100, 160, 160, 220)),
    (3, 18, (5, 5, 25, 20)),
]
# (image, category id, XYXY, score): hits at various IoUs, a duplicate, misses and false positives.
PRED = [
    (1, 1, (11, 11, 31, 30), 0.9), (1, 1, (60, 50, 120, 110), 0.8), (1, 1, (50, 40, 110, 100), 0.3),
    (1, 18, (150, 20, 260, 200), 0.7), (1, 18, (0, 150, 60, 230), 0.6),
    (2, 1, (0, 0, 150, 150), 0.95), (2, 1, (0, 0, 200, 150), 0.5), (2, 1, (230, 110, 250, 135), 0.4),
    (2, 18, (100, 160, 165, 220), 0.85), (3, 1, (5, 5, 25, 20), 0.2),
]


def _rect_mask(box):
    m = np.zeros((H, W), dtype=np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1
    return m


def _gt_json(path):
    anns = []
    for k, (img, cat, (x0, y0, x1, y1)) in enumerate(GT):
        anns.append({
            "id": k + 1, "image_id": img, "category_id": cat, "iscrowd": 0,
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        })
    images = [{"id": i, "height": H, "width": W, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return str(path)


@pytest.fixture
def dataset(tmp_path):
    name = "test_ap50_dataset"
    json_file = _gt_json(tmp_path / "gt.json")
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(
        json_file=json_file, evaluator_type="coco_ap50", thing_classes=["person", "dog"],
        thing_dataset_id_to_contiguous_id={1: 0, 18: 1},
    )
    yield name, json_file
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _run_evaluator(name, predictions, out_dir):
    evaluator = build_evaluator(get_panext_cfg(), name, str(out_dir))
    assert isinstance(evaluator, COCOAP50Evaluator)
    evaluator.reset()
    contiguous = {1: 0, 18: 1}
    for img in (1, 2, 3):
        rows = [p for p in predictions if p[0] == img]
        inst = Instances((H, W))
        inst.pred_boxes = Boxes(torch.tensor([p[2] for p in rows], dtype=torch.float32).view(-1, 4))
        inst.scores = torch.tensor([p[3] for p in rows], dtype=torch.float32)
        inst.pred_classes = torch.tensor([contiguous[p[1]] for p in rows], dtype=torch.long)
        inst.pred_masks = torch.from_numpy(np.stack([_rect_mask(p[2]) for p in rows])).bool()
        evaluator.process([{"image_id": img, "height": H, "width": W}], [{"instances": inst}])
    return evaluator.evaluate()


def _pycocotools(json_file, predictions, iou_type):
    """pycocotools directly, IoU 0.5 only, on hand-made results."""
    results = []
    for img, cat, (x0, y0, x1, y1), score in predictions:
        r = {"image_id": img, "category_id": cat, "score": score}
        if iou_type == "bbox":
            r["bbox"] = [x0, y0, x1 - x0, y1 - y0]
        else:
            rle = mask_util.encode(np.asfortranarray(_rect_mask((x0, y0, x1, y1))))
            rle["counts"] = rle["counts"].decode("ascii")
            r["segmentation"] = rle
        results.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json_file)
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.params.iouThrs = np.array([0.5])
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_registered():
    assert "coco_ap50" in EVALUATOR_REGISTRY.names()


def test_numbers_equal_pycocotools_at_iou_05(dataset, tmp_path):
    name, json_file = dataset
    results = _run_evaluator(name, PRED, tmp_path)
    assert set(results) == {"bbox@0.5", "segm@0.5"}
    for task in ("bbox", "segm"):
        ev = _pycocotools(json_file, PRED, task)
        got = results[f"{task}@0.5"]
        for metric, index in AP50_METRICS.items():
            assert got[metric] == pytest.approx(ev.stats[index] * 100, abs=1e-9), (task, metric)
        precision = ev.eval["precision"][0, :, :, 0, -1]
        for k, cls in enumerate(["person", "dog"]):
            p = precision[:, k]
            assert got[f"AP-{cls}"] == pytest.approx(p[p > -1].mean() * 100)
        # Not the 0.5:0.95 average: the test set has hits between IoU 0.5 and 0.95.
        assert 0 < got["AP"] < 100 and 0 < got["AR100"] < 100
    # Hits at IoU 0.5-0.75 make AP@0.5 larger than the COCO average would be.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json_file)
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "coco_instances_results_ap50.json")), "bbox")
        ev.evaluate(); ev.accumulate(); ev.summarize()
    assert results["bbox@0.5"]["AP"] == pytest.approx(ev.stats[1] * 100)
    assert results["bbox@0.5"]["AP"] > ev.stats[0] * 100


def test_ground_truth_as_predictions_scores_100(dataset, tmp_path):
    name, _ = dataset
    perfect = [(img, cat, box, 1.0) for img, cat, box in GT]
    results = _run_evaluator(name, perfect, tmp_path)
    for task in ("bbox@0.5", "segm@0.5"):
        for metric in ("AP", "APs", "APm", "APl", "AR10", "AR100", "ARs", "ARm", "ARl"):
            assert results[task][metric] == pytest.approx(100.0), (task, metric)
        assert results[task]["AR1"] < 100  # images hold up to three objects


def test_no_predictions_gives_nan(dataset, tmp_path):
    name, _ = dataset
    evaluator = COCOAP50Evaluator(name, tasks=("bbox",), output_dir=str(tmp_path))
    evaluator.reset()
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.zeros(0, 4))
    inst.scores = torch.zeros(0)
    inst.pred_classes = torch.zeros(0, dtype=torch.long)
    evaluator.process([{"image_id": 1}], [{"instances": inst}])
    results = evaluator.evaluate()
    assert all(math.isnan(v) for v in results["bbox@0.5"].values())


def test_mask_model_without_predictions_reports_segm(dataset, tmp_path):
    name, _ = dataset
    cfg = get_panext_cfg()
    cfg.MODEL.MASK_ON = True
    evaluator = build_evaluator(cfg, name, str(tmp_path))
    evaluator.reset()
    for img in (1, 2, 3):
        empty = Instances((H, W))
        empty.pred_boxes = Boxes(torch.zeros(0, 4))
        empty.scores = torch.zeros(0)
        empty.pred_classes = torch.zeros(0, dtype=torch.long)
        empty.pred_masks = torch.zeros(0, H, W, dtype=torch.bool)
        evaluator.process([{"image_id": img, "height": H, "width": W}], [{"instances": empty}])
    results = evaluator.evaluate()  # NaN without predictions, as detectron2's COCOEvaluator
    assert set(results) == {"bbox@0.5", "segm@0.5"}
    assert np.isnan(results["segm@0.5"]["AP"]) and np.isnan(results["bbox@0.5"]["AP"])
