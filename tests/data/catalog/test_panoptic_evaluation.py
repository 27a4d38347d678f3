"""Ground truth fed back as prediction must give PQ 100 through COCOPanopticEvaluator."""

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOPanopticEvaluator

from panext_d2.data.catalog.synthetic.formats import read_panoptic_png


def _prediction(record):
    """A model-style output: segment-id tensor + segments_info with contiguous ids."""
    ids = torch.from_numpy(read_panoptic_png(record["pan_seg_file_name"]).astype("int32"))
    segments = [
        {"id": s["id"], "category_id": s["category_id"], "isthing": s["isthing"]}
        for s in record["segments_info"]
    ]
    return {"panoptic_seg": (ids, segments)}


@pytest.mark.parametrize(
    "name",
    [
        "coco_panoptic_samples",
        "coco_panoptic_samples_separated",
        "synthetic_panoptic_val",
        "synthetic_panoptic_val_separated",
    ],
)
def test_ground_truth_gives_pq_100(registered_cache, name):
    dicts = DatasetCatalog.get(name)
    evaluator = COCOPanopticEvaluator(name)
    evaluator.reset()
    for record in dicts:
        evaluator.process([record], [_prediction(record)])
    result = evaluator.evaluate()["panoptic_seg"]
    for key in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st"):
        assert result[key] == pytest.approx(100.0), key


def test_wrong_class_is_penalised(registered_cache):
    """The check can fail: swapping two thing classes lowers PQ."""
    dicts = DatasetCatalog.get("synthetic_panoptic_val")
    evaluator = COCOPanopticEvaluator("synthetic_panoptic_val")
    evaluator.reset()
    for record in dicts:
        output = _prediction(record)
        for s in output["panoptic_seg"][1]:
            if s["isthing"]:
                s["category_id"] = {0: 1, 1: 0, 2: 2}[s["category_id"]]
        evaluator.process([record], [output])
    result = evaluator.evaluate()["panoptic_seg"]
    assert result["PQ_th"] < 60 and result["PQ_st"] == pytest.approx(100.0)
