"""Mapper "semantic" for the Andrade (2021) segmenter: fixed-size resize (Andrade (2021) §7.3.4: 512x512),
horizontal flip as the only training augmentation, an int64 ``sem_seg`` target; the record's
``foreground_classes`` (image-level labels) and original ``height`` / ``width`` are kept."""

import copy
import logging
from typing import Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..image_io import read_image
from . import MAPPER_REGISTRY
from .detection import augment, label_map_for_transforms, label_range, read_checked_labels


@MAPPER_REGISTRY.register_as("semantic")
class SemanticMapper:
    """Reads the image and, in training, its ``sem_seg_file_name`` label map; applies
    ``augmentations`` to both (labels with nearest-neighbour resampling).

    Test-time dicts get no ``sem_seg``: the model's output is resized back to the original
    ``height`` x ``width`` and evaluators read the label files themselves.

    With ``num_classes`` (by config: the training set's ``stuff_classes``), a label map holding
    a value that is neither a class index nor ``ignore_value`` raises an error naming the file,
    instead of an index error deep in the loss.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations,
        image_format: str = "BGR",
        num_classes: Optional[int] = None,
        ignore_value: int = 255,
    ):
        """
        Args:
            is_train: whether the mapper produces training inputs (image and ``sem_seg``) or
                test inputs (image only).
            augmentations: list of detectron2 augmentations or transforms applied to the image
                and label map (by config: ``T.RandomCrop`` of ``INPUT.CROP.*`` when enabled, in
                training; a resize to ``INPUT.SEMANTIC.SIZE`` (h, w); in training a horizontal
                flip with probability 0.5 if ``INPUT.SEMANTIC.HFLIP``).
            image_format: image format of the ``image`` tensor, as ``detection_utils.read_image``
                reads it ("BGR" by default); ``INPUT.FORMAT``.
            num_classes: number of semantic classes; when given, a label map holding a value
                outside 0..num_classes-1 and ``ignore_value`` raises an error naming the file.
                None (default) disables the check. By config: the length of the first
                ``DATASETS.TRAIN`` dataset's ``stuff_classes``, if any.
            ignore_value: label value of ignored pixels, allowed besides the class indices (by
                config: that dataset's ``ignore_label``, 255 without one).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        logging.getLogger(__name__).info(
            "SemanticMapper (%s) augmentations: %s", "train" if is_train else "test", augmentations
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        augmentations = []
        if is_train and cfg.INPUT.CROP.ENABLED:
            augmentations.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        augmentations.append(T.Resize(tuple(cfg.INPUT.SEMANTIC.SIZE)))
        if is_train and cfg.INPUT.SEMANTIC.HFLIP:
            augmentations.append(T.RandomFlip(prob=0.5, horizontal=True, vertical=False))
        return {
            "is_train": is_train,
            "augmentations": augmentations,
            "image_format": cfg.INPUT.FORMAT,
            **label_range(cfg.DATASETS.TRAIN),
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if self.is_train:
            sem_seg = label_map_for_transforms(
                read_checked_labels(dataset_dict["sem_seg_file_name"], self.num_classes, self.ignore_value)
            )
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        augment(self.augmentations, aug_input, dataset_dict["file_name"])
        dataset_dict["image"] = torch.as_tensor(
            np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))
        )
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(aug_input.sem_seg.astype(np.int64))
        return dataset_dict

