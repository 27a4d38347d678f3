"""Image-level metrics of Andrade (2021) §7.2 for image classifiers (evaluator_type "image_level"):
balanced accuracy (eq. 7.1), TPR / TNR and our multi-class accuracy (exact match of the set
of foreground classes, as in :mod:`.empty_images`), from the classifier's
``foreground_classes`` / ``is_foreground`` outputs and each dataset dict's
``foreground_classes``. The figures equal those of the "empty_images" evaluator for a
segmenter whose predicted class set per image is the classifier's.

In "binary" mode (``MODEL.IMAGE_CLASSIFIER.MODE``) the classes collapse into one
"foreground" column, so the multi-class accuracy is the plain image accuracy.
"""

from collections import OrderedDict

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .build import EVALUATOR_REGISTRY
from .empty_images import summarize
from .per_image_stats import PerImageStatsEvaluator


class ImageLevelEvaluator(PerImageStatsEvaluator):
    result_key, result_file = "image_level", "image_level_evaluation.json"

    def __init__(self, dataset_name, *, binary=False, distributed=True, output_dir=None):
        super().__init__(distributed=distributed, output_dir=output_dir)
        meta = MetadataCatalog.get(dataset_name)
        self._foreground_names = list(meta.stuff_classes)[1:]
        self._gt = {
            d["file_name"]: list(d["foreground_classes"]) for d in DatasetCatalog.get(dataset_name)
        }
        self._binary = binary

    def _presence(self, classes):
        width = 1 if self._binary else len(self._foreground_names)
        row = np.zeros(width, dtype=np.int64)
        for c in classes:
            row[0 if self._binary else int(c) - 1] = 1
        return row

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            gt = self._presence(self._gt[inp["file_name"]])
            pred = self._presence(out["foreground_classes"])
            if self._binary:
                pred[:] = int(out["is_foreground"])
            zeros = np.zeros_like(gt)
            self._stats.append(np.stack([zeros, zeros, gt, pred]))

    def evaluate(self):
        stacked = self.gathered_stats(1 if self._binary else len(self._foreground_names))
        if stacked is None:
            return None
        names = ["foreground"] if self._binary else self._foreground_names
        summary = summarize(stacked, "dataset", names)
        keys = ("bal_acc", "TPR", "TNR", "multiclass_acc", "num_nonempty", "num_empty")
        return self.finish(OrderedDict((k, summary[k]) for k in keys))


@EVALUATOR_REGISTRY.register_as("image_level")
def _image_level(cfg, dataset_name, output_folder):
    return [
        ImageLevelEvaluator(
            dataset_name,
            binary=cfg.MODEL.IMAGE_CLASSIFIER.MODE == "binary",
            distributed=True,
            output_dir=output_folder,
        )
    ]
