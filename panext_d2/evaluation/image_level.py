"""Image-level metrics of Andrade (2021) §7.2 for image classifiers (evaluator_type "image_level"):
balanced accuracy (eq. 7.1), TPR / TNR and our multi-class accuracy (exact match of the set
of foreground classes, as in :mod:`.empty_images`), from the classifier's
``foreground_classes`` / ``is_foreground`` outputs and each dataset dict's
``foreground_classes``. The figures equal those of the "empty_images" evaluator for a
segmenter whose predicted class set per image is the classifier's.

In "binary" mode (``MODEL.IMAGE_CLASSIFIER.MODE``) the classes collapse into one
"foreground" column, so the multi-class accuracy is the plain image accuracy.
"""

import json
import os
from collections import OrderedDict

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from .build import EVALUATOR_REGISTRY
from .empty_images import summarize


class ImageLevelEvaluator(DatasetEvaluator):
    def __init__(self, dataset_name, *, binary=False, distributed=True, output_dir=None):
        meta = MetadataCatalog.get(dataset_name)
        self._foreground_names = list(meta.stuff_classes)[1:]
        self._gt = {
            d["file_name"]: list(d["foreground_classes"]) for d in DatasetCatalog.get(dataset_name)
        }
        self._binary = binary
        self._distributed = distributed
        self._output_dir = output_dir
        self._rows = []

    def reset(self):
        self._rows = []

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
            self._rows.append(np.stack([zeros, zeros, gt, pred]))

    def evaluate(self):
        rows = self._rows
        if self._distributed:
            comm.synchronize()
            rows = [r for part in comm.gather(rows, dst=0) for r in part]
            if not comm.is_main_process():
                return None
        width = 1 if self._binary else len(self._foreground_names)
        stacked = np.stack(rows) if rows else np.zeros((0, 4, width), dtype=np.int64)
        names = ["foreground"] if self._binary else self._foreground_names
        summary = summarize(stacked, "dataset", names)
        keys = ("bal_acc", "TPR", "TNR", "multiclass_acc", "num_nonempty", "num_empty")
        results = OrderedDict((k, summary[k]) for k in keys)
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "image_level_evaluation.json")
            with PathManager.open(path, "w") as f:
                json.dump({k: (None if v != v else v) for k, v in results.items()}, f, indent=1)
        return OrderedDict({"image_level": results})


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
