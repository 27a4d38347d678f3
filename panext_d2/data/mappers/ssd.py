"""Mapper "ssd": detectron2's DatasetMapper (through ``DetectionDatasetMapper``) with SSD's
fixed-size input.

Every image is resized, aspect ratio not kept, to ``INPUT.SSD_SIZE`` x ``INPUT.SSD_SIZE``
(640, Kolhatkar (2020) §3.2.1; TF OD API ``fixed_shape_resizer``, bilinear), then flipped
horizontally at random in training (``INPUT.RANDOM_FLIP``; TF OD API
``random_horizontal_flip``). The TF OD API config also applies ``ssd_random_crop``; the
thesis does not mention it and it is not reproduced.

Boxes and, when the dataset has them, instance masks are kept in training, for the
SSD-ISB branches, always as ``BitMasks`` at the network input size (polygons and COCO RLE
alike, so ``INPUT.MASK_FORMAT`` is not used). At test time annotations are dropped and the model
rescales its detections to the dataset's original "height" / "width".
"""

from detectron2.config import configurable
from detectron2.data import transforms as T

from . import MAPPER_REGISTRY
from .detection import DetectionDatasetMapper

__all__ = ["SSDDatasetMapper", "build_ssd_augmentations"]


def build_ssd_augmentations(cfg, is_train: bool):
    size = cfg.INPUT.SSD_SIZE
    augs = [T.Resize((size, size))]
    if is_train and cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    return augs


@MAPPER_REGISTRY.register_as("ssd")
class SSDDatasetMapper(DetectionDatasetMapper):
    @configurable
    def __init__(self, is_train: bool = True, **kwargs):
        """
        Args:
            is_train: whether the mapper produces training inputs (boxes and masks kept, random
                flip) or test inputs (annotations dropped).
            kwargs: the keyword arguments of :class:`DetectionDatasetMapper` (``num_classes``,
                ``ignore_value`` and detectron2 DatasetMapper's). By config they are
                DetectionDatasetMapper's, except ``augmentations``: a resize to
                ``INPUT.SSD_SIZE`` x ``INPUT.SSD_SIZE`` then, in training, the flip of
                ``INPUT.RANDOM_FLIP``; ``use_instance_mask`` True, ``instance_mask_format``
                "bitmask" and ``recompute_boxes`` False.
        """
        super().__init__(is_train, **kwargs)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        ret["augmentations"] = build_ssd_augmentations(cfg, is_train)
        ret["use_instance_mask"] = True
        ret["instance_mask_format"] = "bitmask"
        ret["recompute_boxes"] = False
        return ret
