"""Evaluators chosen by a dataset's ``evaluator_type`` metadata.

Each entry of ``EVALUATOR_REGISTRY`` is a function ``(cfg, dataset_name, output_folder) ->
list[DatasetEvaluator]`` registered under an evaluator type; model families register their
own types (for example AP at IoU 0.5, or the empty-image metrics) next to detectron2's.
"""
from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    COCOEvaluator,
    DatasetEvaluators,
    SemSegEvaluator,
)

from ..utils.registry import NamedRegistry
from .panoptic_evaluators import AllClassSemSegEvaluator, ThingCOCOEvaluator
from .panoptic_quality import PanopticQualityEvaluator

EVALUATOR_REGISTRY = NamedRegistry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = "Evaluator builders keyed by MetadataCatalog evaluator_type."


@EVALUATOR_REGISTRY.register_as("coco_panoptic_seg")
def _panoptic(cfg, dataset_name, output_folder):
    """PQ always (NaN for a group of classes absent from ground truth and predictions); mIoU when the dataset has semantic label files, box/mask AP when it has an
    instance JSON and the model predicts masks (MODEL.MASK_ON)."""
    meta = MetadataCatalog.get(dataset_name)
    evaluators = [PanopticQualityEvaluator(dataset_name, output_folder)]
    if meta.get("sem_seg_root"):
        evaluators.append(
            AllClassSemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
        )
    if meta.get("json_file") and cfg.MODEL.MASK_ON:
        evaluators.append(ThingCOCOEvaluator(dataset_name, output_dir=output_folder))
    return evaluators


@EVALUATOR_REGISTRY.register_as("coco")
def _coco(cfg, dataset_name, output_folder):
    return [COCOEvaluator(dataset_name, output_dir=output_folder)]


@EVALUATOR_REGISTRY.register_as("sem_seg")
def _sem_seg(cfg, dataset_name, output_folder):
    return [SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)]


@EVALUATOR_REGISTRY.register_as("cityscapes_sem_seg")
def _cityscapes_sem_seg(cfg, dataset_name, output_folder):
    """detectron2's Cityscapes sem-seg files are labelTrainIds PNGs: plain mIoU over 19 classes,
    without the cityscapesscripts dependency of CityscapesSemSegEvaluator."""
    return [SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)]


@EVALUATOR_REGISTRY.register_as("cityscapes_instance")
def _cityscapes_instance(cfg, dataset_name, output_folder):
    return [CityscapesInstanceEvaluator(dataset_name)]


def build_evaluator(cfg, dataset_name, output_folder):
    """A DatasetEvaluators for ``dataset_name``, chosen by its metadata's evaluator_type."""
    # TEST.EVALUATOR_TYPE overrides the dataset's (e.g. image-level metrics for a classifier).
    evaluator_type = cfg.TEST.get("EVALUATOR_TYPE", "") or MetadataCatalog.get(dataset_name).get(
        "evaluator_type"
    )
    if evaluator_type is None or evaluator_type not in EVALUATOR_REGISTRY:
        raise KeyError(
            f"dataset {dataset_name!r} has evaluator_type={evaluator_type!r}; expected one of "
            f"{EVALUATOR_REGISTRY.names()} (set it in MetadataCatalog)"
        )
    evaluators = EVALUATOR_REGISTRY.get(evaluator_type)(cfg, dataset_name, output_folder)
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
