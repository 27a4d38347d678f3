import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from panext_d2.data.catalog.synthetic import panoptic
from panext_d2.data.catalog.synthetic.formats import read_panoptic_png
from panext_d2.utils.panoptic_conventions import IGNORE_LABEL

PARAMS = panoptic.PanopticParams(num_images=12, seed=3)


def _files(folder):
    return {
        os.path.relpath(os.path.join(base, n), folder): open(os.path.join(base, n), "rb").read()
        for base, _, names in os.walk(folder)
        for n in names
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("panoptic")
    panoptic.generate(PARAMS, out)
    return out


def test_same_seed_gives_identical_bytes(generated, tmp_path):
    panoptic.generate(PARAMS, tmp_path)
    assert _files(tmp_path) == _files(generated)


def test_other_seed_differs(generated, tmp_path):
    panoptic.generate(panoptic.PanopticParams(num_images=12, seed=4), tmp_path)
    a, b = _files(generated), _files(tmp_path)
    assert a.keys() == b.keys()
    assert a["images/000001.jpg"] != b["images/000001.jpg"]
    assert a["panoptic.json"] != b["panoptic.json"]


def _json(folder, name):
    with open(folder / name) as f:
        return json.load(f)


def test_panoptic_png_matches_segments(generated):
    pan = _json(generated, "panoptic.json")
    assert [img["file_name"] for img in pan["images"]] == [f"{i:06d}.jpg" for i in range(1, 13)]
    thing_ids = {c["id"] for c in pan["categories"] if c["isthing"]}
    for ann in pan["annotations"]:
        ids = read_panoptic_png(generated / "panoptic" / ann["file_name"])
        assert ids.shape == (PARAMS.image_size, PARAMS.image_size)
        segments = ann["segments_info"]
        assert set(np.unique(ids)) - {0} == {s["id"] for s in segments}
        assert any(s["category_id"] in thing_ids for s in segments)  # at least one thing
        for s in segments:
            mask = ids == s["id"]
            ys, xs = np.nonzero(mask)
            assert s["area"] == mask.sum() > 0
            assert s["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert s["iscrowd"] == 0


def test_instance_rle_equals_panoptic_thing_segments(generated):
    pan, inst = _json(generated, "panoptic.json"), _json(generated, "instances.json")
    assert inst["images"] == pan["images"]
    assert [c["id"] for c in inst["categories"]] == [1, 2, 3]
    by_image = {}
    for a in inst["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for ann in pan["annotations"]:
        ids = read_panoptic_png(generated / "panoptic" / ann["file_name"])
        things = [s for s in ann["segments_info"] if s["category_id"] <= 3]
        instances = by_image[ann["image_id"]]
        assert len(things) == len(instances)
        for s, a in zip(things, instances):
            mask = mask_util.decode(a["segmentation"]).astype(bool)
            np.testing.assert_array_equal(mask, ids == s["id"])
            assert (a["category_id"], a["bbox"], a["area"]) == (
                s["category_id"],
                s["bbox"],
                s["area"],
            )
            assert mask_util.toBbox(a["segmentation"]).tolist() == a["bbox"]


def test_semantic_pngs_follow_panoptic(generated):
    pan = _json(generated, "panoptic.json")
    contiguous = {c["id"]: i for i, c in enumerate(panoptic.CATEGORIES)}
    stuff_label = {c["id"]: i + 1 for i, c in enumerate(panoptic.STUFF)}
    for ann in pan["annotations"]:
        ids = read_panoptic_png(generated / "panoptic" / ann["file_name"])
        full = np.asarray(Image.open(generated / "semantic" / ann["file_name"]))
        stuff = np.asarray(Image.open(generated / "panoptic_stuff" / ann["file_name"]))
        np.testing.assert_array_equal(full == IGNORE_LABEL, ids == 0)
        np.testing.assert_array_equal(stuff == IGNORE_LABEL, ids == 0)
        for s in ann["segments_info"]:
            mask = ids == s["id"]
            assert (full[mask] == contiguous[s["category_id"]]).all()
            assert (stuff[mask] == stuff_label.get(s["category_id"], 0)).all()


def test_images_and_void(generated):
    image = np.asarray(Image.open(generated / "images" / "000001.jpg"))
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    void = [(read_panoptic_png(p) == 0).mean() for p in sorted((generated / "panoptic").iterdir())]
    assert max(void) < 0.05  # only thin boundary lines are void


def test_sizes_and_counts_follow_parameters():
    rng_sizes, counts = [], []
    for index in range(40):
        _, _, segments = panoptic.render(np.random.default_rng([0, index]), PARAMS)
        things = [m for _, cat, m in segments if cat["isthing"]]
        counts.append(len(things))
        rng_sizes += [max(np.ptp(np.nonzero(m)[0]), np.ptp(np.nonzero(m)[1])) + 1 for m in things]
    assert 1 <= min(counts) and max(counts) <= PARAMS.max_things
    assert len(set(counts)) >= 4
    assert max(rng_sizes) <= PARAMS.max_thing_size + 1 and max(rng_sizes) >= 40
