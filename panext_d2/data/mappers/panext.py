"""Dataset mapper of PaNeXt ("panext_panoptic"): image + panoptic PNG -> resized, flipped
image, thing ``instances`` and a stuff ``sem_seg`` target (Debucean (2022) §3.3.1)."""

import copy
import logging

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Instances
from panopticapi.utils import rgb2id

from ...utils.panoptic_conventions import class_index_maps
from ..image_io import read_image
from . import MAPPER_REGISTRY
from .detection import augment

logger = logging.getLogger(__name__)


def read_panoptic_record(record, image_size) -> np.ndarray:
    """The RGB panoptic PNG (uint8 (H, W, 3)) of a training record,
    checked against the record: an error naming the files when the record has no panoptic
    annotation, the PNG's size differs from the image's, or most of the JSON's segments do not
    occur in the PNG (an id encoding that does not match); a warning for partial mismatches."""
    if "pan_seg_file_name" not in record or "segments_info" not in record:
        raise KeyError(
            f"record of {record.get('file_name')} has no 'pan_seg_file_name' / 'segments_info': "
            "the 'panext_panoptic' mapper trains on panoptic annotations; register the dataset "
            "with detectron2's register_coco_panoptic (records of register_coco_panoptic_separated "
            "carry instance and semantic annotations only)"
        )
    path = record["pan_seg_file_name"]
    pan_rgb = read_image(path, "RGB")
    if pan_rgb.shape[:2] != tuple(image_size):
        raise ValueError(
            f"panoptic PNG {path} is {pan_rgb.shape[1]}x{pan_rgb.shape[0]} (WxH); its image "
            f"{record['file_name']} is {image_size[1]}x{image_size[0]}"
        )
    ids = rgb2id(pan_rgb)
    listed = {s["id"] for s in record["segments_info"]}
    present = set(np.unique(ids).tolist()) - {0}
    missing = listed - present
    if listed and len(missing) > len(listed) / 2:
        raise ValueError(
            f"panoptic PNG {path} holds only {len(listed) - len(missing)} of the {len(listed)} "
            f"segment ids its JSON lists (PNG ids {sorted(present)[:5]}..., JSON ids "
            f"{sorted(listed)[:5]}...); ids are encoded as R + 256 G + 256^2 B"
        )
    if listed != present:
        logger.warning(
            f"panoptic PNG {path}: JSON segments without pixels {sorted(missing)}, "
            f"PNG ids the JSON does not list {sorted(present - listed)} (trained as void)"
        )
    return pan_rgb


class PaNeXtPanopticMapper:
    """Reads ``file_name``, ``pan_seg_file_name`` and ``segments_info`` (contiguous
    ``category_id`` + ``isthing``) and produces:

    * ``image``: (C, H, W) uint8 tensor in ``cfg.INPUT.FORMAT``;
    * ``instances``: non-crowd things, ``gt_classes`` = thing index (0..C_th-1),
      ``gt_masks`` (BitMasks), ``gt_boxes`` (from the masks);
    * ``sem_seg``: (H, W) long, stuff index (0..C_st-1) on stuff pixels, ``ignore_value`` on
      things, crowd regions and void.

    Targets are produced in training only, as detectron2's DatasetMapper does.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations,
        image_format: str,
        thing_index,
        stuff_index,
        ignore_value: int = 255
    ):
        """
        Args:
            is_train: whether the mapper produces training inputs (with ``instances`` and
                ``sem_seg`` targets) or test inputs (image only).
            augmentations: list of detectron2 augmentations or transforms applied to the image
                and the panoptic PNG (by config: ``utils.build_augmentation``, i.e.
                ``INPUT.MIN_SIZE_*`` / ``INPUT.MAX_SIZE_*`` resize and ``INPUT.RANDOM_FLIP``).
            image_format: image format of the ``image`` tensor, as ``detection_utils.read_image``
                reads it ("BGR", "RGB", ...); ``INPUT.FORMAT``.
            thing_index: mapping {contiguous thing id: thing index 0..C_th-1}, the channel of
                the class in the thing head (by config: ranks among the first dataset's thing
                ids, or 0..``MODEL.PANEXT.NUM_THING_CLASSES``-1 without id maps).
            stuff_index: mapping {contiguous stuff id: stuff index 0..C_st-1}, the channel in
                the stuff head (by config: as ``thing_index``, with
                ``MODEL.PANEXT.NUM_STUFF_CLASSES``).
            ignore_value: ``sem_seg`` value of thing, crowd and void pixels;
                ``MODEL.PANEXT.TARGETS.IGNORE_VALUE``.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.thing_index = dict(thing_index)
        self.stuff_index = dict(stuff_index)
        self.ignore_value = ignore_value

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        names = cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST
        meta = MetadataCatalog.get(names[0]) if len(names) else MetadataCatalog.get("__unused__")
        thing_index, stuff_index = class_index_maps(
            meta, cfg.MODEL.PANEXT.NUM_THING_CLASSES, cfg.MODEL.PANEXT.NUM_STUFF_CLASSES
        )
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "thing_index": thing_index,
            "stuff_index": stuff_index,
            "ignore_value": cfg.MODEL.PANEXT.TARGETS.IGNORE_VALUE,
        }

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        if not self.is_train:
            aug_input = T.AugInput(image)
            augment(self.augmentations, aug_input, dataset_dict["file_name"])
            dataset_dict["image"] = torch.as_tensor(
                np.ascontiguousarray(aug_input.image.transpose(2, 0, 1))
            )
            dataset_dict.pop("pan_seg_file_name", None)
            dataset_dict.pop("segments_info", None)
            return dataset_dict

        # The RGB-encoded PNG is transformed as uint8 (nearest), then decoded to ids.
        pan_rgb = read_panoptic_record(dataset_dict, image.shape[:2])
        self._check_categories(dataset_dict)
        dataset_dict.pop("pan_seg_file_name")
        aug_input = T.AugInput(image, sem_seg=pan_rgb)
        augment(self.augmentations, aug_input, dataset_dict["file_name"])
        image, pan_ids = aug_input.image, rgb2id(aug_input.sem_seg)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        instances, sem_seg = self.panoptic_targets(
            torch.from_numpy(pan_ids.astype(np.int64)), dataset_dict.pop("segments_info")
        )
        dataset_dict["instances"] = instances
        dataset_dict["sem_seg"] = sem_seg
        return dataset_dict

    def _check_categories(self, record):
        for segment in record["segments_info"]:
            known = self.thing_index if segment["isthing"] else self.stuff_index
            if segment["category_id"] not in known:
                kind = "thing" if segment["isthing"] else "stuff"
                raise KeyError(
                    f"{record['pan_seg_file_name']}: segment {segment['id']} has {kind} category "
                    f"{segment['category_id']}, not one of the dataset's {kind} classes "
                    f"(contiguous ids {sorted(known)[:10]}...)"
                )

    def panoptic_targets(self, pan_ids: torch.Tensor, segments_info):
        """(Instances, sem_seg) from an (H, W) id map and its segments."""
        h, w = pan_ids.shape
        things = [s for s in segments_info if s["isthing"] and not s.get("iscrowd", 0)]
        stuff = [s for s in segments_info if not s["isthing"] and not s.get("iscrowd", 0)]

        ids = torch.tensor([s["id"] for s in things], dtype=torch.int64)
        masks = (
            pan_ids[None] == ids[:, None, None]
            if len(things)
            else torch.zeros(0, h, w, dtype=torch.bool)
        )
        keep = masks.flatten(1).any(1)
        instances = Instances((h, w))
        instances.gt_classes = torch.tensor(
            [self.thing_index[s["category_id"]] for s in things], dtype=torch.int64
        )[keep]
        instances.gt_masks = BitMasks(masks[keep])
        instances.gt_boxes = instances.gt_masks.get_bounding_boxes()

        # Lookup from segment id to stuff index through the sorted segment ids.
        sem_seg = torch.full((h, w), self.ignore_value, dtype=torch.int64)
        if stuff:
            seg_ids = torch.tensor([s["id"] for s in stuff], dtype=torch.int64)
            seg_cls = torch.tensor(
                [self.stuff_index[s["category_id"]] for s in stuff], dtype=torch.int64
            )
            order = torch.argsort(seg_ids)
            seg_ids, seg_cls = seg_ids[order], seg_cls[order]
            pos = torch.searchsorted(seg_ids, pan_ids).clamp(max=len(seg_ids) - 1)
            hit = seg_ids[pos] == pan_ids
            sem_seg = torch.where(hit, seg_cls[pos], sem_seg)
        return instances, sem_seg


MAPPER_REGISTRY.register_as("panext_panoptic", PaNeXtPanopticMapper)
