"""Two-stage baseline of Andrade (2021) (§7, §8.2, Tables 8.2 / 8.3): an image classifier filters
out the images it predicts empty, and a segmenter segments the rest.

The model is built from one config, with no file I/O:

* the config describes the **segmenter** (all its ``MODEL.ENCDEC.*``, ``MODEL.RESNETS.*``...
  keys apply) with ``MODEL.META_ARCHITECTURE: "TwoStageSegmentor"`` and
  ``MODEL.TWO_STAGE.SEGMENTER_ARCHITECTURE`` naming the segmenter's own meta-architecture;
* the **classifier** (an :class:`ImageClassifier`) is built from the same config with
  ``MODEL.IMAGE_CLASSIFIER.*``, its backbone giving only ``IMAGE_CLASSIFIER.IN_FEATURE``, and
  ``MODEL.TWO_STAGE.CLASSIFIER_INPUT_SIZE`` as the size it resizes images to (its training size).

Weights come through the checkpointer like any model's: ``MODEL.WEIGHTS`` names a two-stage
checkpoint (``classifier.*`` and ``segmenter.*`` keys) that ``tools/assemble_two_stage.py``
writes from the two separately trained checkpoints. The stages are trained separately, each
with its own config; the segmenter on non-empty images only (Table 8.2 "Train on empty
images: No": ``DATALOADER.FOREGROUND_SAMPLING.FOREGROUND_SHARE 1.0``) or on all images
(under-sampling, as the single-stage models).

Inference: the classifier scores every image (at its own input size); images it predicts
positive (any sigmoid score >= ``MODEL.TWO_STAGE.THRESHOLD``) go through the segmenter in one
sub-batch; the others get an all-background ``sem_seg`` (probability 1 on class 0). The
output is detectron2's ``sem_seg`` (K x height x width) plus the classifier's
``foreground_scores``, so the "empty_images" evaluator (fg IoU on non-empty images, balanced
accuracy, multi-class accuracy) scores the whole pipeline.
"""

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from .classifier import ImageClassifier

ASSEMBLE_COMMAND = (
    "python tools/assemble_two_stage.py --classifier CLASSIFIER.pth --segmenter SEGMENTER.pth "
    "--output TWO_STAGE.pth"
)


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
        seg_cfg = cfg.clone()
        seg_cfg.defrost()
        seg_cfg.MODEL.META_ARCHITECTURE = t.SEGMENTER_ARCHITECTURE
        cls_cfg = cfg.clone()
        cls_cfg.defrost()
        cls_cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
        cls_cfg.MODEL.RESNETS.OUT_FEATURES = [cfg.MODEL.IMAGE_CLASSIFIER.IN_FEATURE]
        cls_cfg.MODEL.IMAGE_CLASSIFIER.INPUT_SIZE = tuple(t.CLASSIFIER_INPUT_SIZE)
        return {
            "classifier": META_ARCH_REGISTRY.get("ImageClassifier")(cls_cfg),
            "segmenter": META_ARCH_REGISTRY.get(t.SEGMENTER_ARCHITECTURE)(seg_cfg),
            "num_classes": cfg.MODEL.ENCDEC.NUM_CLASSES,
            "threshold": t.THRESHOLD,
        }

    # load_for_evaluation adds this to its error when MODEL.WEIGHTS is missing.
    weights_hint = f"a two-stage checkpoint is assembled by: {ASSEMBLE_COMMAND}"

    def forward(self, batched_inputs):
        if self.training:
            raise RuntimeError(
                "TwoStageSegmentor is inference-only: train the ImageClassifier and the "
                f"segmenter with their own configs, then assemble them: {ASSEMBLE_COMMAND}"
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
