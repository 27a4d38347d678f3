"""Mapper "semantic" for the Andrade (2021) segmenter: fixed-size resize (Andrade (2021) §7.3.4: 512x512),
horizontal flip as the only training augmentation, an int64 ``sem_seg`` target; the record's
``foreground_classes`` (image-level labels) and original ``height`` / ``width`` are kept."""

import copy
import logging

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from . import MAPPER_REGISTRY


@MAPPER_REGISTRY.register_as("semantic")
class SemanticMapper:
    """Reads the image and, in training, its ``sem_seg_file_name`` label map; applies
    ``augmentations`` to both (labels with nearest-neighbour resampling).

    Test-time dicts get no ``sem_seg``: the model's output is resized back to the original
    ``height`` x ``width`` and evaluators read the label files themselves.
    """

    @configurable
    def __init__(self, is_train: bool = True, *, augmentations, image_format: str = "BGR"):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
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
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if self.is_train:
            sem_seg = utils.read_image(dataset_dict["sem_seg_file_name"], "L").squeeze(2)
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        dataset_dict["image"] = torch.as_tensor(
            np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))
        )
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(aug_input.sem_seg.astype(np.int64))
        return dataset_dict
