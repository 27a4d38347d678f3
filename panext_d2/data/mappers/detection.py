"""Mapper "default": detectron2's DatasetMapper reading images and semantic labels through
:mod:`panext_d2.data.image_io` (16-bit images rescaled instead of clipped, palette label maps
read as indices, unreadable files named)."""
import copy
from typing import Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..image_io import read_image, read_label_map
from . import MAPPER_REGISTRY


def label_range(dataset_names) -> dict:
    """``num_classes`` / ``ignore_value`` of semantic labels from the first dataset's
    metadata, when it names its classes (``stuff_classes``); nothing otherwise."""
    if not len(dataset_names):
        return {}
    meta = MetadataCatalog.get(dataset_names[0])
    if not meta.get("stuff_classes"):
        return {}
    return {"num_classes": len(meta.stuff_classes), "ignore_value": meta.get("ignore_label", 255)}


def read_checked_labels(path: str, num_classes: Optional[int], ignore_value: int) -> np.ndarray:
    """The label map of ``path`` (see :func:`read_label_map`); with ``num_classes``, a value
    that is neither a class index nor ``ignore_value`` raises an error naming the file,
    instead of an index error deep in the loss."""
    labels = read_label_map(path)
    if num_classes is not None:
        bad = ((labels >= num_classes) & (labels != ignore_value)) | (labels < 0)
        if bad.any():
            raise ValueError(
                f"label map {path} holds {sorted(np.unique(labels[bad]).tolist())[:10]}; "
                f"expected class indices 0..{num_classes - 1} (the dataset's stuff_classes) "
                f"or the ignore value {ignore_value}"
            )
    return labels


def label_map_for_transforms(labels: np.ndarray) -> np.ndarray:
    """detectron2's transforms resize uint8 maps with PIL and others with torch, which has no
    nearest resize for integers: uint8 when the labels fit, float32 (exact below 2**24)
    otherwise; the caller casts back to int64."""
    if labels.size == 0 or (labels.min() >= 0 and labels.max() <= 255):
        return labels.astype(np.uint8)
    return labels.astype(np.float32)


def augment(augmentations, aug_input: T.AugInput, file_name: str):
    """``augmentations(aug_input)``; an image too elongated for the resize (one side would
    shrink to 0 pixels, where PIL fails) raises an error naming the file."""
    try:
        return augmentations(aug_input)
    except ValueError as error:
        if "must be > 0" not in str(error):
            raise
        h, w = aug_input.image.shape[:2]
        raise ValueError(
            f"image {file_name} ({w}x{h}) cannot be resized by {augmentations}: a side would "
            "have 0 pixels; drop it from the dataset or crop it"
        ) from error


@MAPPER_REGISTRY.register_as("default")
class DetectionDatasetMapper(DatasetMapper):
    """Same inputs, outputs and options as detectron2's DatasetMapper, plus ``num_classes`` /
    ``ignore_value`` to check semantic labels (by config: the training set's classes)."""

    @configurable
    def __init__(self, is_train: bool = True, *, num_classes: Optional[int] = None,
                 ignore_value: int = 255, **kwargs):
        """
        Args:
            is_train: whether the mapper produces training inputs (annotations kept and
                transformed) or test inputs (annotations dropped).
            num_classes: number of semantic classes; when given, a ``sem_seg_file_name`` label
                map holding a value outside 0..num_classes-1 and ``ignore_value`` raises an
                error naming the file. None (default) disables the check. By config: the
                length of the first ``DATASETS.TRAIN`` dataset's ``stuff_classes``, if any.
            ignore_value: label value allowed besides the class indices (by config: that
                dataset's ``ignore_label``, 255 without one).
            kwargs: the keyword arguments of detectron2's :class:`DatasetMapper`
                (``augmentations``, ``image_format``, ``use_instance_mask``,
                ``instance_mask_format``, ``use_keypoint``, ``keypoint_hflip_indices``,
                ``precomputed_proposal_topk``, ``recompute_boxes``), with the same meaning and
                config keys (``INPUT.*``, ``MODEL.MASK_ON``, ``MODEL.KEYPOINT_ON``, ...).
        """
        super().__init__(is_train, **kwargs)
        self.num_classes = num_classes
        self.ignore_value = ignore_value

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {**super().from_config(cfg, is_train), **label_range(cfg.DATASETS.TRAIN)}

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            path = dataset_dict.pop("sem_seg_file_name")
            sem_seg = label_map_for_transforms(read_checked_labels(path, self.num_classes, self.ignore_value))

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = augment(self.augmentations, aug_input, dataset_dict["file_name"])
        image, sem_seg = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype("long"))
        if self.proposal_topk is not None:
            utils.transform_proposals(dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk)

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict
