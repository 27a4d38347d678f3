"""detectron2's SemSegEvaluator and COCOEvaluator on panoptic datasets of the "standard"
convention (detectron2's ``coco_2017_*_panoptic``: thing and stuff contiguous ids are
disjoint indices into one list of all classes, which both ``thing_classes`` and
``stuff_classes`` hold). The stock evaluators assume the stuff map covers every semantic
label and that ``thing_classes`` has one name per instance category; these subclasses read
the two maps together instead. On other datasets they behave exactly like the stock ones."""
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, SemSegEvaluator

from ..utils.panoptic_conventions import is_standard_convention


class AllClassSemSegEvaluator(SemSegEvaluator):
    """Semantic labels of things and stuff map back to dataset ids through both id maps."""

    def __init__(self, dataset_name, **kwargs):
        super().__init__(dataset_name, **kwargs)
        meta = MetadataCatalog.get(dataset_name)
        if is_standard_convention(meta):
            both = {**meta.thing_dataset_id_to_contiguous_id, **meta.stuff_dataset_id_to_contiguous_id}
            self._contiguous_id_to_dataset_id = {v: k for k, v in both.items()}


class ThingCOCOEvaluator(COCOEvaluator):
    """Per-category AP tables name the instance categories only."""

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        meta = self._metadata
        if class_names is not None and is_standard_convention(meta):
            thing_ids = sorted(meta.thing_dataset_id_to_contiguous_id.values())
            class_names = [meta.thing_classes[i] for i in thing_ids]
        return super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
