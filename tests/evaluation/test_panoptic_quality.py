"""PQ of a group of classes absent from ground truth and predictions is NaN, not a crash:
a things-only panoptic dataset (the real COCO samples with their stuff removed) evaluated
through detectron2's stock evaluator and ours."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_panoptic
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.evaluation import COCOPanopticEvaluator
from PIL import Image

from panext_d2.data.catalog.synthetic.formats import read_panoptic_png
from panext_d2.evaluation.panoptic_quality import PanopticQualityEvaluator
from tests.conftest import COCO_SAMPLES

NAME = "test_things_only_coco_samples"


def _strip_stuff(root, out):
    """Copy of the samples whose stuff segments are void (id 0) and gone from the JSON."""
    shutil.copytree(f"{root}/images", out / "images")
    (out / "panoptic").mkdir()
    panoptic = json.loads(open(f"{root}/panoptic_examples.json").read())
    stuff_ids = {c["id"] for c in panoptic["categories"] if not c["isthing"]}
    for ann in panoptic["annotations"]:
        rgb = np.array(Image.open(f"{root}/panoptic/{ann['file_name']}"), dtype=np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        for segment in ann["segments_info"]:
            if segment["category_id"] in stuff_ids:
                rgb[ids == segment["id"]] = 0
        ann["segments_info"] = [s for s in ann["segments_info"] if s["category_id"] not in stuff_ids]
        Image.fromarray(rgb.astype(np.uint8)).save(out / "panoptic" / ann["file_name"])
    (out / "panoptic.json").write_text(json.dumps(panoptic))


@pytest.fixture(scope="module")
def things_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("things_only")
    _strip_stuff(COCO_SAMPLES, out)
    register_coco_panoptic(
        NAME, _get_builtin_metadata("coco_panoptic_standard"), str(out / "images"),
        str(out / "panoptic"), str(out / "panoptic.json"), instances_json=None,
    )
    yield DatasetCatalog.get(NAME)
    DatasetCatalog.remove(NAME)
    MetadataCatalog.remove(NAME)


def _evaluate(evaluator_class, records, keep_things=True):
    evaluator = evaluator_class(NAME)
    evaluator.reset()
    for record in records:
        ids = torch.from_numpy(read_panoptic_png(record["pan_seg_file_name"]).astype("int32"))
        segments = [{k: s[k] for k in ("id", "category_id", "isthing")} for s in record["segments_info"]]
        if not keep_things:
            ids, segments = torch.zeros_like(ids), []
        evaluator.process([record], [{"panoptic_seg": (ids, segments)}])
    return evaluator.evaluate()["panoptic_seg"]


def test_stock_evaluator_crashes_on_a_things_only_dataset(things_only):
    assert all(s["isthing"] for r in things_only for s in r["segments_info"])
    with pytest.raises(ZeroDivisionError):
        _evaluate(COCOPanopticEvaluator, things_only)


def test_absent_stuff_gives_nan_and_things_keep_their_pq(things_only):
    result = _evaluate(PanopticQualityEvaluator, things_only)
    assert result["PQ_th"] == pytest.approx(100.0)
    assert result["PQ"] == pytest.approx(100.0)
    assert all(math.isnan(result[k]) for k in ("PQ_st", "SQ_st", "RQ_st"))


def test_missed_things_still_score_zero(things_only):
    """Ground truth without predictions is PQ 0 (the things occur), not NaN."""
    result = _evaluate(PanopticQualityEvaluator, things_only, keep_things=False)
    assert result["PQ_th"] == 0.0 and result["PQ"] == 0.0
    assert math.isnan(result["PQ_st"])


@pytest.mark.slow
def test_training_with_periodic_evaluation_on_things_only_data_completes(things_only, tmp_path):
    from panext_d2 import Trainer, get_panext_cfg
    from tests.conftest import REPO_ROOT

    cfg = get_panext_cfg(f"{REPO_ROOT}/configs/quick_schedules/panext_synthetic_cpu.yaml", [
        "MODEL.PANEXT.NUM_THING_CLASSES", "80", "MODEL.PANEXT.NUM_STUFF_CLASSES", "53",
        "DATASETS.TRAIN", f"('{NAME}',)", "DATASETS.TEST", f"('{NAME}',)",
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "4", "TEST.EVAL_PERIOD", "2",
        "OUTPUT_DIR", str(tmp_path),
    ])
    cfg.freeze()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.iter == cfg.SOLVER.MAX_ITER  # ran to the end
    pq = trainer.storage.history("panoptic_seg/PQ_st").values()
    assert len(pq) == 2 and all(math.isnan(v) for v, _ in pq)
