"""Metrics of Andrade (2021) §7.2 for datasets dominated by empty images (evaluator_type
"empty_images").

* **Foreground IoU on non-empty images**: only images whose ground truth holds a foreground
  pixel count, and the IoU is averaged over the foreground classes (background left out).
  §7.2 does not say how the IoU is reduced over images; ``iou_mode`` decides:
  ``"dataset"`` (default, ``TEST.EMPTY_IMAGES.IOU_MODE``) sums each class' intersections and
  unions over those images (eq. 5.4 over the set, as detectron2's SemSegEvaluator), then
  IoU_c = I_c / U_c; ``"image"`` averages, per class, I/U over the non-empty images where the
  class is in the ground truth or the prediction (U > 0). A class never seen in either
  (U = 0 everywhere) is left out of the mean.
* **Image-level balanced accuracy** (eq. 7.1): an image is predicted positive when any pixel
  is predicted foreground, and is positive when its ground truth has a foreground pixel;
  ACC_bal = (TP/P + TN/N) / 2. With only one kind of image in the set, the rate of that
  kind alone (as scikit-learn's balanced_accuracy_score).
* **Multi-class accuracy**: Table 8.3 reports it without a definition; ours is the share of
  images whose set of predicted foreground classes (classes with at least one predicted
  pixel) equals the set present in the ground truth (empty = empty counts as correct).

Pixels labelled ``ignore_label`` are left out of the IoU and of the ground-truth class sets;
predictions count on every pixel. Values are percentages, as detectron2's evaluators report.
"""

from collections import OrderedDict

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager
from PIL import Image

from .build import EVALUATOR_REGISTRY
from .per_image_stats import PerImageStatsEvaluator

IOU_MODES = ("dataset", "image")


def image_statistics(pred, gt, num_classes, ignore_label=255):
    """Per foreground class 1..K-1 of one image: intersection, union, present in ground
    truth, present in prediction; a (4, K-1) int64 array."""
    pred = np.asarray(pred, dtype=np.int64)
    gt = np.asarray(gt, dtype=np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    valid = (gt != ignore_label) & (gt >= 0) & (gt < num_classes)
    p, g = pred[valid], gt[valid]
    k = num_classes
    confusion = np.bincount(k * g + p, minlength=k * k).reshape(k, k)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    gt_present = confusion.sum(1) > 0
    pred_present = np.bincount(pred.ravel(), minlength=k)[:k] > 0
    return np.stack([intersection, union, gt_present, pred_present])[:, 1:].astype(np.int64)


def summarize(stats, iou_mode="dataset", class_names=None):
    """§7.2 metrics (percent) from stacked :func:`image_statistics`, shape (images, 4, K-1)."""
    if iou_mode not in IOU_MODES:
        raise ValueError(f"iou_mode {iou_mode!r}; expected one of {IOU_MODES}")
    stats = np.asarray(stats, dtype=np.float64).reshape(-1, 4, np.shape(stats)[-1])
    inter, union, gt_has, pred_has = (stats[:, i] for i in range(4))
    gt_has, pred_has = gt_has > 0, pred_has > 0
    positive, predicted = gt_has.any(1), pred_has.any(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if iou_mode == "dataset":
            iou = inter[positive].sum(0) / union[positive].sum(0)
        else:
            per_image = np.where(union[positive] > 0, inter[positive] / union[positive], np.nan)
            seen = (union[positive] > 0).any(0)
            iou = np.full(per_image.shape[1], np.nan)
            iou[seen] = np.nanmean(per_image[:, seen], axis=0)
    num_pos, num_neg = int(positive.sum()), int((~positive).sum())
    tpr = (positive & predicted).sum() / num_pos if num_pos else np.nan
    tnr = (~positive & ~predicted).sum() / num_neg if num_neg else np.nan
    rates = [r for r in (tpr, tnr) if not np.isnan(r)]
    names = class_names or [str(c) for c in range(1, iou.shape[0] + 1)]
    results = OrderedDict()
    results["mIoU_nonempty"] = 100 * _nanmean(iou)
    for name, value in zip(names, iou):
        results[f"IoU_nonempty-{name}"] = 100 * value
    results["bal_acc"] = 100 * (np.mean(rates) if rates else np.nan)
    results["TPR"] = 100 * tpr
    results["TNR"] = 100 * tnr
    results["multiclass_acc"] = 100 * (gt_has == pred_has).all(1).mean() if len(stats) else np.nan
    results["num_nonempty"] = num_pos
    results["num_empty"] = num_neg
    return results


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


class EmptyImagesEvaluator(PerImageStatsEvaluator):
    """§7.2 metrics for a semantic dataset (``stuff_classes`` with background first,
    ``ignore_label``, records with ``sem_seg_file_name``); reads the model's ``sem_seg``."""

    result_key, result_file = "empty_images", "empty_images_evaluation.json"

    def __init__(self, dataset_name, *, distributed=True, output_dir=None, iou_mode="dataset"):
        super().__init__(distributed=distributed, output_dir=output_dir)
        if iou_mode not in IOU_MODES:
            raise ValueError(
                f"TEST.EMPTY_IMAGES.IOU_MODE={iou_mode!r}; expected one of {IOU_MODES}"
            )
        meta = MetadataCatalog.get(dataset_name)
        self._class_names = list(meta.stuff_classes)
        self._ignore_label = meta.get("ignore_label", 255)
        self._gt_files = {
            d["file_name"]: d["sem_seg_file_name"] for d in DatasetCatalog.get(dataset_name)
        }
        self._iou_mode = iou_mode

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            pred = out["sem_seg"].argmax(dim=0).to(torch.int64).cpu().numpy()
            with PathManager.open(self._gt_files[inp["file_name"]], "rb") as f:
                gt = np.array(Image.open(f), dtype=np.int64)
            self._stats.append(
                image_statistics(pred, gt, len(self._class_names), self._ignore_label)
            )

    def evaluate(self):
        stacked = self.gathered_stats(len(self._class_names) - 1)
        if stacked is None:
            return None
        return self.finish(summarize(stacked, self._iou_mode, self._class_names[1:]))


@EVALUATOR_REGISTRY.register_as("empty_images")
def _empty_images(cfg, dataset_name, output_folder):
    return [
        EmptyImagesEvaluator(
            dataset_name,
            distributed=True,
            output_dir=output_folder,
            iou_mode=cfg.TEST.EMPTY_IMAGES.IOU_MODE,
        )
    ]
