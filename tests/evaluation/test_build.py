"""Evaluators chosen by evaluator_type, and the panoptic trio (PQ, mIoU, AP) agreeing with
ground truth fed back as prediction on a standard-convention panoptic dataset."""
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import (
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    SemSegEvaluator,
)
from detectron2.structures import Boxes, Instances
from PIL import Image

from panext_d2.data.catalog.synthetic import register_synthetic_panoptic
from panext_d2.data.catalog.synthetic.formats import read_panoptic_png
from panext_d2.evaluation import build_evaluator

NAME = "test_eval_synthetic_panoptic"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    register_synthetic_panoptic(NAME, root=str(tmp_path_factory.mktemp("cache")), num_images=6, seed=5)
    yield DatasetCatalog.get(NAME)
    DatasetCatalog.remove(NAME)
    MetadataCatalog.remove(NAME)


def _ground_truth_as_prediction(record, num_classes):
    ids = torch.from_numpy(read_panoptic_png(record["pan_seg_file_name"]).astype("int32"))
    segments = [{k: s[k] for k in ("id", "category_id", "isthing")} for s in record["segments_info"]]
    labels = torch.from_numpy(np.array(Image.open(record["sem_seg_file_name"]), dtype=np.int64))
    scores = torch.nn.functional.one_hot(labels.clamp(max=num_classes - 1), num_classes)
    things = [s for s in segments if s["isthing"]]
    instances = Instances(tuple(ids.shape))
    masks = torch.stack([ids == s["id"] for s in things]) if things else torch.zeros((0, *ids.shape), dtype=torch.bool)
    instances.pred_masks = masks
    instances.pred_boxes = Boxes(torch.tensor(
        [[m.nonzero()[:, 1].min(), m.nonzero()[:, 0].min(), m.nonzero()[:, 1].max() + 1, m.nonzero()[:, 0].max() + 1]
         for m in masks], dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.ones(len(things))
    instances.pred_classes = torch.tensor([s["category_id"] for s in things], dtype=torch.int64)
    return {
        "panoptic_seg": (ids, segments),
        "sem_seg": scores.permute(2, 0, 1).float(),
        "instances": instances,
    }


def test_panoptic_dataset_gets_pq_miou_and_ap(cfg, dataset, tmp_path):
    cfg.MODEL.MASK_ON = True
    evaluator = build_evaluator(cfg, NAME, str(tmp_path))
    assert isinstance(evaluator, DatasetEvaluators)
    kinds = [type(e) for e in evaluator._evaluators]
    assert issubclass(kinds[0], COCOPanopticEvaluator)
    assert issubclass(kinds[1], SemSegEvaluator) and issubclass(kinds[2], COCOEvaluator)

    num_classes = len(MetadataCatalog.get(NAME).stuff_classes)
    evaluator.reset()
    for record in dataset:
        evaluator.process([record], [_ground_truth_as_prediction(record, num_classes)])
    results = evaluator.evaluate()
    assert results["panoptic_seg"]["PQ"] == pytest.approx(100.0)
    assert results["sem_seg"]["mIoU"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)


def test_without_masks_no_instance_evaluation(cfg, dataset, tmp_path):
    cfg.MODEL.MASK_ON = False
    evaluator = build_evaluator(cfg, NAME, str(tmp_path))
    assert not any(isinstance(e, COCOEvaluator) for e in evaluator._evaluators)


def test_unknown_evaluator_type_is_reported(cfg, tmp_path):
    name = "test_eval_made_up_type"
    DatasetCatalog.register(name, list)
    MetadataCatalog.get(name).set(evaluator_type="made_up")
    try:
        with pytest.raises(KeyError, match="made_up"):
            build_evaluator(cfg, name, str(tmp_path))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_config_overrides_the_dataset_evaluator_type(cfg, tmp_path):
    from panext_d2.data.catalog.synthetic import register_synthetic_sparse
    from panext_d2.evaluation.image_level import ImageLevelEvaluator

    name = "test_eval_sparse_override"
    register_synthetic_sparse(name, root=str(tmp_path / "cache"), num_images=4, seed=1)
    try:
        assert not isinstance(build_evaluator(cfg, name, str(tmp_path)), ImageLevelEvaluator)
        cfg.TEST.EVALUATOR_TYPE = "image_level"
        assert isinstance(build_evaluator(cfg, name, str(tmp_path)), ImageLevelEvaluator)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
