"""Image classifier of Andrade's (2021) two-stage baseline (§7, §8.2): a registered detectron2
backbone (ResNet-50, §7.3.1), global average pooling and a linear layer, trained with the
(binary) cross-entropy (§7.3.3) on image-level labels taken from each dataset dict's
``foreground_classes``.

Two modes (``MODEL.IMAGE_CLASSIFIER.MODE``):

* ``"binary"``: one logit, "the image holds foreground" (SIIM-ACR: pneumothorax or not);
* ``"multilabel"``: one logit per foreground class 1..K-1 (COCO BikeCar: bicycle, car), each
  a sigmoid, so an image can hold both.

Inference returns, per image, ``foreground_scores`` (sigmoid probabilities, one per logit),
``is_foreground`` (any score >= ``threshold``) and ``foreground_classes`` (the foreground
labels whose score passes; in binary mode ``[1]`` or ``[]``, i.e. "some foreground").
Evaluator type "image_level" (:mod:`panext_d2.evaluation.image_level`) reads these.
"""

from typing import List

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn


CLASSIFIER_MODES = ("binary", "multilabel")


def image_level_targets(foreground_classes, mode: str, num_foreground_classes: int):
    """(N, outputs) float targets: ``binary`` 1 when the list is non-empty; ``multilabel``
    1 at column c - 1 for each foreground class c (labels 1..num_foreground_classes)."""
    if mode == "binary":
        return torch.tensor([[float(len(c) > 0)] for c in foreground_classes])
    targets = torch.zeros(len(foreground_classes), num_foreground_classes)
    for row, classes in enumerate(foreground_classes):
        for c in classes:
            if not 1 <= int(c) <= num_foreground_classes:
                raise ValueError(
                    f"foreground class {c} outside 1..{num_foreground_classes} "
                    "(MODEL.IMAGE_CLASSIFIER.NUM_FOREGROUND_CLASSES)"
                )
            targets[row, int(c) - 1] = 1.0
    return targets


@META_ARCH_REGISTRY.register()
class ImageClassifier(nn.Module):
    """Backbone -> global average pooling of ``in_feature`` -> linear -> sigmoid(s).

    Training inputs need ``foreground_classes`` (the datasets' image-level labels); the loss
    is ``loss_cls``, the binary cross-entropy averaged over images and outputs.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_feature: str,
        pixel_mean,
        pixel_std,
        mode: str = "binary",
        num_foreground_classes: int = 1,
        threshold: float = 0.5,
        input_size=(),
        size_divisibility: int = 0,
    ):
        """
        Args:
            in_feature: the backbone output that is pooled ("res5" for a ResNet).
            num_foreground_classes: K - 1; the number of logits in "multilabel" mode.
            threshold: sigmoid score from which an image (class) is predicted positive.
            input_size: (height, width) the images are resized to (bilinear) before the
                backbone; empty keeps the mapper's size. Used when the classifier sees the
                segmenter's inputs in :class:`TwoStageSegmentor` (§7.3.4: 256x256 for
                classifiers, 512x512 for segmenters).
        """
        super().__init__()
        if mode not in CLASSIFIER_MODES:
            raise ValueError(
                f"MODEL.IMAGE_CLASSIFIER.MODE={mode!r}; expected one of {CLASSIFIER_MODES}"
            )
        shapes = backbone.output_shape()
        if in_feature not in shapes:
            raise ValueError(
                f"MODEL.IMAGE_CLASSIFIER.IN_FEATURE {in_feature!r} is not a backbone output "
                f"({sorted(shapes)})"
            )
        self.backbone = backbone
        self.in_feature = in_feature
        self.mode = mode
        self.num_foreground_classes = int(num_foreground_classes)
        self.threshold = float(threshold)
        self.input_size = tuple(input_size)
        self.size_divisibility = max(size_divisibility, backbone.size_divisibility)
        num_outputs = 1 if mode == "binary" else self.num_foreground_classes
        self.linear = nn.Linear(shapes[in_feature].channels, num_outputs)
        nn.init.normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        c = cfg.MODEL.IMAGE_CLASSIFIER
        return {
            "backbone": build_backbone(cfg),
            "in_feature": c.IN_FEATURE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "mode": c.MODE,
            "num_foreground_classes": c.NUM_FOREGROUND_CLASSES,
            "threshold": c.THRESHOLD,
            "input_size": c.INPUT_SIZE,
            "size_divisibility": cfg.MODEL.ENCDEC.SIZE_DIVISIBILITY,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def logits(self, images: List[torch.Tensor]) -> torch.Tensor:
        """(N, outputs) logits of a list of CHW images in the input format, pixel values."""
        images = [(x.to(self.device).float() - self.pixel_mean) / self.pixel_std for x in images]
        if self.input_size:
            batch = torch.stack([_resize_image(x, self.input_size) for x in images])
        else:
            batch = ImageList.from_tensors(images, self.size_divisibility).tensor
        feature = self.backbone(batch)[self.in_feature]
        return self.linear(F.adaptive_avg_pool2d(feature, 1).flatten(1))

    def forward(self, batched_inputs):
        logits = self.logits([x["image"] for x in batched_inputs])
        if self.training:
            missing = [i for i, x in enumerate(batched_inputs) if "foreground_classes" not in x]
            if missing:
                raise KeyError(
                    "ImageClassifier trains on the dataset dicts' 'foreground_classes' "
                    f"(missing in batch items {missing})"
                )
            targets = image_level_targets(
                [x["foreground_classes"] for x in batched_inputs],
                self.mode,
                self.num_foreground_classes,
            ).to(logits.device)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
            return {"loss_cls": loss}
        return [self.decide(scores) for scores in logits.float().sigmoid()]

    def decide(self, scores: torch.Tensor) -> dict:
        """The inference dict of one image from its sigmoid scores."""
        passed = (scores >= self.threshold).nonzero().flatten().tolist()
        return {
            "foreground_scores": scores,
            "is_foreground": bool(passed),
            "foreground_classes": [c + 1 for c in passed],
        }


def _resize_image(image: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of one CHW float image to ``size`` (identity when it matches)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
