import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from panext_d2.data.catalog.synthetic import instances

PARAMS = instances.InstancesParams(num_images=16, seed=2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("instances")
    instances.generate(PARAMS, out)
    return out


def _read(folder, name):
    return (folder / name).read_bytes()


def test_deterministic_by_seed(generated, tmp_path):
    instances.generate(PARAMS, tmp_path)
    for name in ("instances.json", "images/000001.jpg", "images/000016.jpg"):
        assert _read(tmp_path, name) == _read(generated, name)
    other = tmp_path / "other"
    instances.generate(instances.InstancesParams(num_images=16, seed=3), other)
    assert _read(other, "instances.json") != _read(generated, "instances.json")


def test_annotations_are_consistent_rle_masks(generated):
    data = json.loads(_read(generated, "instances.json"))
    assert data["categories"] == instances.CATEGORIES
    assert len(data["images"]) == 16
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"]) > 0
    by_image = {}
    for a in data["annotations"]:
        mask = mask_util.decode(a["segmentation"]).astype(bool)
        assert mask.shape == (256, 256)
        assert a["area"] == mask.sum() >= instances.MIN_VISIBLE_AREA
        assert mask_util.toBbox(a["segmentation"]).tolist() == a["bbox"]
        assert (a["category_id"], a["iscrowd"]) == (1, 0)
        by_image.setdefault(a["image_id"], []).append(mask)
    for masks in by_image.values():  # visible masks never overlap
        assert np.sum(masks, axis=0).max() == 1


def test_sizes_span_small_to_large_and_some_images_are_empty():
    heights, empty = [], 0
    for index in range(120):
        _, masks = instances.render(np.random.default_rng([0, index]), instances.InstancesParams())
        empty += not masks
        heights += [np.ptp(np.nonzero(m)[0]) + 1 for m in masks]
    assert 5 <= empty <= 40  # default empty_share 0.15
    assert min(heights) <= 12 and max(heights) >= 150
    assert np.mean(np.array(heights) < 32) > 0.15  # COCO "small" objects are common
