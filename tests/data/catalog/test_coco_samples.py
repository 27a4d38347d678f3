import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json
from PIL import Image

from panext_d2.data.catalog import coco_samples
from panext_d2.data.catalog.synthetic.formats import read_panoptic_png
from tests.conftest import COCO_SAMPLES

NAMES = ["coco_panoptic_samples", "coco_panoptic_samples_separated", "coco_samples_instances"]


def test_default_root_is_the_vendored_copy(monkeypatch):
    monkeypatch.delenv(coco_samples.SAMPLES_ENV, raising=False)
    assert os.path.realpath(coco_samples.samples_root()) == os.path.realpath(COCO_SAMPLES)


def test_environment_variable_overrides_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv(coco_samples.SAMPLES_ENV, str(tmp_path))
    assert coco_samples.samples_root() == tmp_path


@pytest.mark.parametrize("name", NAMES)
def test_samples_load(registered_cache, name):
    dicts = DatasetCatalog.get(name)
    assert sorted(d["image_id"] for d in dicts) == [142238, 439180]
    meta = MetadataCatalog.get(name)
    assert len(meta.thing_classes) == (133 if name == "coco_panoptic_samples" else 80)
    assert meta.json_file.startswith(str(registered_cache))  # derived files never in the samples folder
    if "instances" not in name:
        assert meta.evaluator_type == "coco_panoptic_seg"
        assert all(d["sem_seg_file_name"].startswith(str(registered_cache)) for d in dicts)


def test_standard_matches_detectron2_loader(registered_cache):
    meta = MetadataCatalog.get("coco_panoptic_samples")
    ours = DatasetCatalog.get("coco_panoptic_samples")
    theirs = load_coco_panoptic_json(
        meta.panoptic_json, meta.image_root, meta.panoptic_root, meta.as_dict()
    )
    assert [{k: d[k] for k in t} for d, t in zip(ours, theirs)] == theirs


def test_semantic_pngs_follow_detectron2_conventions(registered_cache):
    contiguous = {c["id"]: i for i, c in enumerate(COCO_CATEGORIES)}
    stuff = {c["id"]: i + 1 for i, c in enumerate(c for c in COCO_CATEGORIES if not c["isthing"])}
    separated = {d["image_id"]: d for d in DatasetCatalog.get("coco_panoptic_samples_separated")}
    meta = MetadataCatalog.get("coco_panoptic_samples")
    with open(meta.panoptic_json) as f:
        raw = {a["image_id"]: a for a in json.load(f)["annotations"]}
    for d in DatasetCatalog.get("coco_panoptic_samples"):
        ids = read_panoptic_png(d["pan_seg_file_name"])
        full = np.asarray(Image.open(d["sem_seg_file_name"]))
        stuff_png = np.asarray(Image.open(separated[d["image_id"]]["sem_seg_file_name"]))
        assert ((full == 255) == (ids == 0)).all() and ((stuff_png == 255) == (ids == 0)).all()
        for seg in raw[d["image_id"]]["segments_info"]:
            mask = ids == seg["id"]
            assert (full[mask] == contiguous[seg["category_id"]]).all()
            assert (stuff_png[mask] == stuff.get(seg["category_id"], 0)).all()


def test_instances_keep_things_only(registered_cache):
    dicts = DatasetCatalog.get("coco_samples_instances")
    with open(MetadataCatalog.get("coco_samples_instances").json_file) as f:
        data = json.load(f)
    assert len(data["categories"]) == 80
    with open(MetadataCatalog.get("coco_panoptic_samples").panoptic_json) as f:
        pan = json.load(f)
    isthing = {c["id"]: c["isthing"] for c in pan["categories"]}
    segments = [s for a in pan["annotations"] for s in a["segments_info"]]
    things = [s for s in segments if isthing[s["category_id"]]]
    assert len(segments) > len(things) == len(data["annotations"])
    assert sum(len(d["annotations"]) for d in dicts) == len(things)
    assert any(a["iscrowd"] for d in dicts for a in d["annotations"])


def test_missing_root_names_path_and_env(tmp_path):
    missing = tmp_path / "no_samples"
    try:
        coco_samples.register_coco_samples(root=missing, cache=tmp_path / "cache")
        for name in NAMES:
            with pytest.raises(FileNotFoundError, match=f"{missing}.*{coco_samples.SAMPLES_ENV}"):
                DatasetCatalog.get(name)
    finally:
        coco_samples.register_coco_samples()
