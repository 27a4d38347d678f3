import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json

from panext_d2.data.catalog.synthetic import (
    register_synthetic_instances,
    register_synthetic_panoptic,
    register_synthetic_sparse,
)

SIZES = {
    "synthetic_panoptic_train": 400,
    "synthetic_panoptic_val": 60,
    "synthetic_panoptic_train_separated": 400,
    "synthetic_panoptic_val_separated": 60,
    "synthetic_instances_train": 400,
    "synthetic_instances_val": 60,
    "synthetic_sparse_train": 400,
    "synthetic_sparse_val": 100,
}
EVALUATOR = {"panoptic": "coco_panoptic_seg", "instances": "coco", "sparse": "empty_images"}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_registered_name_loads(registered_cache, name):
    dicts = DatasetCatalog.get(name)
    meta = MetadataCatalog.get(name)
    assert len(dicts) == SIZES[name]
    assert meta.evaluator_type == EVALUATOR[name.split("_")[1]]
    assert meta.dataset_root.startswith(str(registered_cache))
    assert len({d["image_id"] for d in dicts}) == len(dicts)
    for d in dicts[:5]:
        assert os.path.isfile(d["file_name"])
        assert d["height"] == d["width"] == (256 if "instances" in name else 128)
    if "panoptic" in name:
        assert {"pan_seg_file_name", "segments_info", "sem_seg_file_name"} <= dicts[0].keys()
        sem_dir = "panoptic_stuff" if name.endswith("_separated") else "semantic"
        assert os.path.basename(os.path.dirname(dicts[0]["sem_seg_file_name"])) == sem_dir
        assert meta.ignore_label == 255
    if name.endswith("_separated") or "instances" in name:
        assert any(d["annotations"] for d in dicts)
        cats = {a["category_id"] for d in dicts for a in d["annotations"]}
        assert cats <= set(range(len(meta.thing_classes)))
    if "sparse" in name:
        empty = sum(not d["foreground_classes"] for d in dicts) / len(dicts)
        assert abs(empty - 0.75) <= 0.01
        assert meta.stuff_classes == ["background", "blob", "streak"]


def test_standard_dicts_match_detectron2_loader(registered_cache):
    meta = MetadataCatalog.get("synthetic_panoptic_val")
    ours = DatasetCatalog.get("synthetic_panoptic_val")
    theirs = load_coco_panoptic_json(
        meta.panoptic_json, meta.image_root, meta.panoptic_root, meta.as_dict()
    )
    assert [{k: d[k] for k in t} for d, t in zip(ours, theirs)] == theirs
    segments = [s for d in ours for s in d["segments_info"]]
    assert {s["category_id"] for s in segments if s["isthing"]} == {0, 1, 2}
    assert {s["category_id"] for s in segments if not s["isthing"]} == {3, 4, 5}


def test_separated_dicts_use_panoptic_fpn_ids(registered_cache):
    meta = MetadataCatalog.get("synthetic_panoptic_val_separated")
    assert meta.stuff_classes == ["things", "sky", "grass", "wall"]
    assert meta.stuff_dataset_id_to_contiguous_id == {0: 0, 11: 1, 12: 2, 13: 3}
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
    segments = [
        s
        for d in DatasetCatalog.get("synthetic_panoptic_val_separated")
        for s in d["segments_info"]
    ]
    assert {s["category_id"] for s in segments if not s["isthing"]} == {1, 2, 3}


@pytest.fixture
def custom_names():
    names = []
    yield names
    for name in names:
        for n in (name, name + "_separated"):
            if n in DatasetCatalog:
                DatasetCatalog.remove(n)
                MetadataCatalog.remove(n)


def test_custom_sets_generate_lazily_and_per_parameters(cache_dir, custom_names):
    custom_names += ["tiny_pan", "tiny_inst", "tiny_sparse"]
    register_synthetic_panoptic("tiny_pan", num_images=3, image_size=64, seed=9)
    register_synthetic_instances("tiny_inst", num_images=3, image_size=96, seed=9)
    register_synthetic_sparse("tiny_sparse", num_images=4, seed=9, empty_share=0.5, num_classes=1)
    assert not cache_dir.exists()  # registering generates nothing
    assert len(DatasetCatalog.get("tiny_pan_separated")) == 3
    assert len(DatasetCatalog.get("tiny_inst")) == 3
    sparse = DatasetCatalog.get("tiny_sparse")
    assert sum(not d["foreground_classes"] for d in sparse) == 2
    assert MetadataCatalog.get("tiny_sparse").stuff_classes == ["background", "blob"]
    folders = sorted(p.name.split("-")[0] for p in cache_dir.iterdir())
    assert folders == ["synthetic_instances", "synthetic_panoptic", "synthetic_sparse"]

    first = MetadataCatalog.get("tiny_pan").dataset_root
    register_synthetic_panoptic("tiny_pan", num_images=3, image_size=64, seed=10)
    assert MetadataCatalog.get("tiny_pan").dataset_root != first
    DatasetCatalog.get("tiny_pan")
    assert len(list(cache_dir.glob("synthetic_panoptic-*"))) == 2


def test_missing_or_corrupt_files_are_named(cache_dir, custom_names):
    custom_names.append("tiny_broken")
    register_synthetic_panoptic("tiny_broken", num_images=2, image_size=64)
    dicts = DatasetCatalog.get("tiny_broken")
    os.remove(dicts[1]["pan_seg_file_name"])
    with pytest.raises(FileNotFoundError, match=r"panoptic/000002\.png.*regenerate"):
        DatasetCatalog.get("tiny_broken")
    with open(MetadataCatalog.get("tiny_broken").panoptic_json, "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match=r"panoptic\.json"):
        DatasetCatalog.get("tiny_broken")
