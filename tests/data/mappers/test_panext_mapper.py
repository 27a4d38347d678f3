"""The "panext_panoptic" mapper on the two real COCO panoptic samples."""

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T

from panext_d2.data import MAPPER_REGISTRY, build_dataset_mapper
from panext_d2.data.mappers.panext import PaNeXtPanopticMapper
from panext_d2.utils.panoptic_conventions import class_index_maps

NAME = "coco_panoptic_samples"


@pytest.fixture
def samples(registered_cache):
    return DatasetCatalog.get(NAME)


@pytest.fixture
def panext_cfg(cfg):
    cfg.DATASETS.TRAIN = (NAME,)
    cfg.DATASETS.TEST = (NAME,)
    cfg.INPUT.DATASET_MAPPER_NAME = "panext_panoptic"
    cfg.INPUT.MIN_SIZE_TRAIN = (200,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 160
    cfg.INPUT.MAX_SIZE_TEST = 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    return cfg


def test_registered_and_built_by_name(panext_cfg):
    assert "panext_panoptic" in MAPPER_REGISTRY
    assert isinstance(build_dataset_mapper(panext_cfg, True), PaNeXtPanopticMapper)


def test_classes_and_areas_follow_the_json(panext_cfg, samples):
    mapper = build_dataset_mapper(panext_cfg, True)
    thing_index, stuff_index = class_index_maps(MetadataCatalog.get(NAME))
    for record in samples:
        out = mapper(record)
        scale = 200 / min(record["height"], record["width"])
        assert (
            tuple(out["image"].shape[1:])
            == out["instances"].image_size
            == tuple(out["sem_seg"].shape)
        )
        assert min(out["image"].shape[1:]) == 200

        things = [s for s in record["segments_info"] if s["isthing"] and not s["iscrowd"]]
        inst = out["instances"]
        assert inst.gt_classes.tolist() == [thing_index[s["category_id"]] for s in things]
        areas = inst.gt_masks.tensor.flatten(1).sum(1).double()
        expected = torch.tensor([s["area"] for s in things], dtype=torch.float64) * scale**2
        # Nearest resizing moves boundary pixels: allow 15% or a perimeter's worth.
        tolerance = torch.maximum(0.15 * expected, 4 * expected.sqrt() + 10)
        assert ((areas - expected).abs() <= tolerance).all(), (areas, expected)
        boxes = inst.gt_boxes.tensor
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()

        stuff = [s for s in record["segments_info"] if not s["isthing"]]
        sem = out["sem_seg"]
        present = set(sem.unique().tolist()) - {255}
        assert present == {stuff_index[s["category_id"]] for s in stuff}
        for s in stuff:
            area = (sem == stuff_index[s["category_id"]]).sum().item()
            assert abs(area - s["area"] * scale**2) <= 0.15 * s["area"] * scale**2 + 50
        # Thing pixels are not stuff.
        assert (sem[inst.gt_masks.tensor.any(0)] == 255).all()


def test_flip_mirrors_image_masks_and_stuff(panext_cfg, samples):
    resize = T.ResizeShortestEdge((200,), 1000, "choice")
    kwargs = PaNeXtPanopticMapper.from_config(panext_cfg, True)
    kwargs.pop("augmentations")
    plain = PaNeXtPanopticMapper(augmentations=[resize], **kwargs)
    flipped = PaNeXtPanopticMapper(augmentations=[resize, T.RandomFlip(prob=1.0)], **kwargs)
    a, b = plain(samples[0]), flipped(samples[0])
    assert torch.equal(a["image"].flip(-1), b["image"])
    assert torch.equal(a["instances"].gt_masks.tensor.flip(-1), b["instances"].gt_masks.tensor)
    assert torch.equal(a["sem_seg"].flip(-1), b["sem_seg"])
    assert torch.equal(a["instances"].gt_classes, b["instances"].gt_classes)


def test_inference_mode_resizes_without_targets(panext_cfg, samples):
    out = build_dataset_mapper(panext_cfg, False)(samples[1])
    assert min(out["image"].shape[1:]) == 160
    assert "instances" not in out and "sem_seg" not in out
    assert (out["height"], out["width"]) == (samples[1]["height"], samples[1]["width"])


def test_identity_class_layout_without_metadata():
    meta = MetadataCatalog.get("__panext_no_such_dataset__")
    things, stuff = class_index_maps(meta, 3, 2)
    assert things == {0: 0, 1: 1, 2: 2} and stuff == {3: 0, 4: 1}


def test_sem_seg_lookup_matches_a_loop():
    mapper = PaNeXtPanopticMapper(
        True, augmentations=[], image_format="BGR", thing_index={0: 0}, stuff_index={5: 0, 7: 1}
    )
    pan = torch.tensor([[0, 11, 30], [20, 11, 30]])
    segments = [
        {"id": 11, "category_id": 0, "isthing": True},
        {"id": 30, "category_id": 7, "isthing": False},
        {"id": 20, "category_id": 5, "isthing": False},
    ]
    instances, sem = mapper.panoptic_targets(pan, segments)
    assert sem.tolist() == [[255, 255, 1], [0, 255, 1]]
    assert instances.gt_masks.tensor.tolist() == [[[False, True, False], [False, True, False]]]
    assert np.allclose(instances.gt_boxes.tensor.numpy(), [[1, 0, 2, 2]])


@pytest.mark.parametrize(
    "thing_map,stuff_map,expected",
    [
        # detectron2 "standard": the stuff map covers every class, for SemSegEvaluator
        ({1: 0, 3: 2}, {1: 0, 2: 1, 3: 2, 4: 3}, ([0, 2], [1, 3])),
        # disjoint maps
        ({1: 0, 3: 2}, {2: 1, 4: 3}, ([0, 2], [1, 3])),
        # "separated": contiguous stuff ids restart at 1, id 0 is the "things" class
        ({1: 0, 3: 1}, {0: 0, 2: 1, 4: 2}, ([0, 1], [1, 2])),
    ],
)
def test_panoptic_class_ids_conventions(thing_map, stuff_map, expected):
    from panext_d2.utils.panoptic_conventions import panoptic_class_ids

    name = f"__panext_ids_{len(MetadataCatalog.list())}"
    meta = MetadataCatalog.get(name).set(
        thing_dataset_id_to_contiguous_id=thing_map, stuff_dataset_id_to_contiguous_id=stuff_map
    )
    assert panoptic_class_ids(meta) == expected
