"""Two-stage baseline of Andrade (2021) (§7, §8.2, Tables 8.2 / 8.3): an image classifier filters
out the images it predicts empty, and a segmenter segments the rest.

The model is built from two configs and two checkpoints:

* the config that builds :class:`TwoStageSegmentor` describes the **segmenter** (all its
  ``MODEL.ENCDEC.*``, ``MODEL.RESNETS.*``... keys apply) with
  ``MODEL.META_ARCHITECTURE: "TwoStageSegmentor"`` and
  ``MODEL.TWO_STAGE.SEGMENTER_ARCHITECTURE`` naming the segmenter's own meta-architecture
  (``EncDecSegmentor``); its weights are ``MODEL.TWO_STAGE.SEGMENTER_WEIGHTS``;
* ``MODEL.TWO_STAGE.CLASSIFIER_CONFIG`` is the classifier's YAML (an
  :class:`ImageClassifier`), ``MODEL.TWO_STAGE.CLASSIFIER_WEIGHTS`` its checkpoint.

``MODEL.WEIGHTS`` stays empty (or names a checkpoint of the whole two-stage model, with
``classifier.*`` and ``segmenter.*`` keys). The stages are trained separately, each with its
own config; the segmenter on non-empty images only (Table 8.2 "Train on empty images: No":
``DATALOADER.FOREGROUND_SAMPLING.FOREGROUND_SHARE 1.0``) or on all images (under-sampling,
as the single-stage models).

Inference: the classifier scores every image (at its own input size); images it predicts
positive (any sigmoid score >= ``MODEL.TWO_STAGE.THRESHOLD``) go through the segmenter in one
sub-batch; the others get an all-background ``sem_seg`` (probability 1 on class 0). The
output is detectron2's ``sem_seg`` (K x height x width) plus the classifier's
``foreground_scores``, so the "empty_images" evaluator (fg IoU on non-empty images, balanced
accuracy, multi-class accuracy) scores the whole pipeline.
"""

import logging
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from ...config import get_panext_cfg
from .classifier import ImageClassifier

logger = logging.getLogger(__name__)
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _config_path(path):
    """``path`` as given, else relative to the repository root (the recipe configs name
    ``configs/encdec/...``, which then resolve from any working directory)."""
    if os.path.isabs(path) or os.path.isfile(path):
        return path
    in_repo = os.path.join(_REPO_ROOT, path)
    return in_repo if os.path.isfile(in_repo) else path


def _load_weights(model, weights, what):
    if weights:
        DetectionCheckpointer(model).load(weights)
    else:
        logger.warning("TwoStageSegmentor: no %s weights given; the %s is untrained", what, what)


@META_ARCH_REGISTRY.register()
class TwoStageSegmentor(nn.Module):
    @configurable
    def __init__(
        self,
        *,
        classifier: ImageClassifier,
        segmenter: nn.Module,
        num_classes: int,
        threshold: float = 0.5,
    ):
        """
        Args:
            classifier: decides which images are segmented (its ``logits``).
            segmenter: a detectron2 semantic segmenter returning ``sem_seg`` per image.
            num_classes: K, classes of the segmenter including background (label 0).
            threshold: an image is positive when any classifier score is >= threshold
                (overrides the classifier's own threshold).
        """
        super().__init__()
        self.classifier = classifier
        self.segmenter = segmenter
        self.num_classes = int(num_classes)
        self.threshold = float(threshold)

    @classmethod
    def from_config(cls, cfg):
        t = cfg.MODEL.TWO_STAGE
        if t.SEGMENTER_ARCHITECTURE == "TwoStageSegmentor":
            raise ValueError("MODEL.TWO_STAGE.SEGMENTER_ARCHITECTURE must name the segmenter")
        if not t.CLASSIFIER_CONFIG:
            raise ValueError("MODEL.TWO_STAGE.CLASSIFIER_CONFIG (the classifier's YAML) is empty")
        seg_cfg = cfg.clone()
        seg_cfg.defrost()
        seg_cfg.MODEL.META_ARCHITECTURE = t.SEGMENTER_ARCHITECTURE
        segmenter = META_ARCH_REGISTRY.get(t.SEGMENTER_ARCHITECTURE)(seg_cfg)

        cls_cfg = get_panext_cfg(_config_path(t.CLASSIFIER_CONFIG))
        cls_cfg.MODEL.DEVICE = cfg.MODEL.DEVICE
        if not cls_cfg.MODEL.IMAGE_CLASSIFIER.INPUT_SIZE:
            # The classifier sees the segmenter's inputs: bring them to its training size.
            cls_cfg.MODEL.IMAGE_CLASSIFIER.INPUT_SIZE = tuple(cls_cfg.INPUT.SEMANTIC.SIZE)
        classifier = META_ARCH_REGISTRY.get(cls_cfg.MODEL.META_ARCHITECTURE)(cls_cfg)
        if not isinstance(classifier, ImageClassifier):
            raise ValueError(
                f"{t.CLASSIFIER_CONFIG} builds a {type(classifier).__name__}; the first stage "
                "must be an ImageClassifier"
            )
        _load_weights(classifier, t.CLASSIFIER_WEIGHTS, "classifier")
        _load_weights(segmenter, t.SEGMENTER_WEIGHTS, "segmenter")
        device = torch.device(cfg.MODEL.DEVICE)
        return {
            "classifier": classifier.to(device),
            "segmenter": segmenter.to(device),
            "num_classes": cfg.MODEL.ENCDEC.NUM_CLASSES,
            "threshold": t.THRESHOLD,
        }

    def forward(self, batched_inputs):
        if self.training:
            raise RuntimeError(
                "TwoStageSegmentor is inference-only: train the ImageClassifier and the "
                "segmenter with their own configs and give their checkpoints "
                "(MODEL.TWO_STAGE.CLASSIFIER_WEIGHTS / SEGMENTER_WEIGHTS)"
            )
        scores = self.classifier.logits([x["image"] for x in batched_inputs]).float().sigmoid()
        positive = (scores >= self.threshold).any(dim=1).tolist()
        segmented = iter(
            self.segmenter([x for x, keep in zip(batched_inputs, positive) if keep])
            if any(positive)
            else []
        )
        results = []
        for inputs, keep, score in zip(batched_inputs, positive, scores):
            if keep:
                result = dict(next(segmented))
            else:
                result = {"sem_seg": self.empty_prediction(inputs)}
            result["foreground_scores"] = score
            results.append(result)
        return results

    def empty_prediction(self, inputs) -> torch.Tensor:
        """All-background scores (K x height x width) at the input's output size."""
        height = inputs.get("height", inputs["image"].shape[-2])
        width = inputs.get("width", inputs["image"].shape[-1])
        sem_seg = torch.zeros(self.num_classes, height, width, device=self.classifier.device)
        sem_seg[0] = 1.0
        return sem_seg
