"""AP and AR at IoU 0.50 with the COCO size breakdown (Kolhatkar (2020) §5.2; evaluator_type
"coco_ap50").

Kolhatkar (2020) reports, for an IoU threshold of 0.50 only ("like the PASCAL VOC dataset"): AP, AP
small / medium / large, AR for 1, 10 and 100 detections, AR small / medium / large, for
boxes and masks. That is pycocotools' ``COCOeval`` with ``params.iouThrs = [0.5]``: its
``stats`` then hold AP (0), APs / APm / APl (3-5), AR@1 / 10 / 100 (6-8), ARs / ARm / ARl
(9-11); small / medium / large are COCO's areas (< 32^2, 32^2-96^2, > 96^2 pixels, mask
area for masks, §5.1.1).

:class:`COCOAP50Evaluator` is detectron2's :class:`COCOEvaluator` (same conversion of
``Instances`` to COCO results, same gathering over processes, same category-id mapping)
with the evaluation swapped for that single threshold, always with the official
pycocotools. Results are under ``"bbox@0.5"`` and ``"segm@0.5"`` (so that the evaluator
can sit beside a standard COCOEvaluator in ``DatasetEvaluators``), in percent, with
``AP-<class>`` per class when the dataset has several.
"""
import contextlib
import copy
import io
import itertools
import json
import os
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval

from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .build import EVALUATOR_REGISTRY

__all__ = ["AP50_METRICS", "COCOAP50Evaluator", "evaluate_ap50", "ap50_metrics"]

# Metric name -> index in COCOeval.stats when iouThrs == [0.5].
AP50_METRICS = OrderedDict(
    [("AP", 0), ("APs", 3), ("APm", 4), ("APl", 5), ("AR1", 6), ("AR10", 7), ("AR100", 8),
     ("ARs", 9), ("ARm", 10), ("ARl", 11)]
)
_TASKS = ("bbox", "segm")


def evaluate_ap50(coco_gt, coco_results, iou_type: str, img_ids: Optional[Sequence[int]] = None) -> COCOeval:
    """Run pycocotools at IoU 0.5 on COCO-format results (maxDets 1 / 10 / 100)."""
    if iou_type not in _TASKS:
        raise ValueError(f"iou_type must be one of {_TASKS}, got {iou_type!r}")
    if iou_type == "segm":
        # As detectron2: without "bbox", pycocotools takes the mask area for the size ranges.
        coco_results = [{k: v for k, v in r.items() if k != "bbox"} for r in coco_results]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(coco_results))
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
        coco_eval.params.iouThrs = np.array([0.5])
        coco_eval.params.maxDets = [1, 10, 100]
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def ap50_metrics(coco_eval: Optional[COCOeval], class_names: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Percentages from a :func:`evaluate_ap50` run (NaN where undefined or no predictions)."""
    if coco_eval is None:
        return {name: float("nan") for name in AP50_METRICS}
    stats = coco_eval.stats
    results = {name: float(stats[i] * 100) if stats[i] >= 0 else float("nan") for name, i in AP50_METRICS.items()}
    if class_names is not None and len(class_names) > 1:
        precision = coco_eval.eval["precision"]  # (iou, recall, class, area, max dets)
        for k, name in enumerate(class_names):
            p = precision[0, :, k, 0, -1]
            p = p[p > -1]
            results[f"AP-{name}"] = float(p.mean() * 100) if p.size else float("nan")
    return results


class COCOAP50Evaluator(COCOEvaluator):
    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        allow_cached_coco: bool = True,
    ):
        """
        Args:
            dataset_name, distributed, output_dir, allow_cached_coco: as COCOEvaluator.
            tasks: among "bbox", "segm"; default: "bbox", plus "segm" when the predictions
                have masks.
        """
        super().__init__(
            dataset_name,
            tasks=tasks,
            distributed=distributed,
            output_dir=output_dir,
            use_fast_impl=False,
            allow_cached_coco=allow_cached_coco,
        )

    def _to_dataset_category_ids(self, coco_results):
        mapping = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if not mapping:
            return coco_results
        reverse = {v: k for k, v in mapping.items()}
        for result in coco_results:
            if result["category_id"] not in reverse:
                raise ValueError(f"predicted class {result['category_id']} is not a dataset class")
            result["category_id"] = reverse[result["category_id"]]
        return coco_results

    def _eval_predictions(self, predictions, img_ids=None):
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = [t for t in (self._tasks or self._tasks_from_predictions(coco_results)) if t in _TASKS]
        coco_results = self._to_dataset_category_ids(coco_results)
        if self._output_dir:
            path = os.path.join(self._output_dir, "coco_instances_results_ap50.json")
            with PathManager.open(path, "w") as f:
                f.write(json.dumps(coco_results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        for task in tasks:
            coco_eval = evaluate_ap50(self._coco_api, coco_results, task, img_ids) if coco_results else None
            results = ap50_metrics(coco_eval, self._metadata.get("thing_classes"))
            self._logger.info(f"Evaluation results for {task} at IoU 0.50:\n" + create_small_table(
                {k: v for k, v in results.items() if k in AP50_METRICS}
            ))
            self._results[f"{task}@0.5"] = results


@EVALUATOR_REGISTRY.register_as("coco_ap50")
def _coco_ap50(cfg, dataset_name, output_folder):
    """Mask models (MODEL.MASK_ON) report segm even when they predict nothing (as NaN)."""
    tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else None
    return [COCOAP50Evaluator(dataset_name, tasks=tasks, output_dir=output_folder)]
