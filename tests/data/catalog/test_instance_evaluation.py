"""Ground-truth instances fed back as predictions must give AP 100 through COCOEvaluator."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import Boxes, BoxMode, Instances


def _prediction(record):
    anns = record["annotations"]
    instances = Instances((record["height"], record["width"]))
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.ones(len(anns))
    instances.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
    masks = [mask_util.decode(a["segmentation"]).astype(bool) for a in anns]
    shape = (0, record["height"], record["width"])
    instances.pred_masks = torch.from_numpy(np.stack(masks) if masks else np.zeros(shape, bool))
    return {"instances": instances}


@pytest.mark.parametrize("name", ["synthetic_instances_val", "synthetic_panoptic_val_separated"])
def test_ground_truth_gives_ap_100(registered_cache, name):
    dicts = DatasetCatalog.get(name)  # generates the set, json_file included
    evaluator = COCOEvaluator(name, tasks=("bbox", "segm"), output_dir=None)
    evaluator.reset()
    for record in dicts:
        evaluator.process([{"image_id": record["image_id"]}], [_prediction(record)])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
