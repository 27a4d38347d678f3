import os
import shutil

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import panext_d2  # noqa: F401  (registers the datasets)
from panext_d2.data.builders.cityscapes_person_crops import build_cityscapes_person_crops
from panext_d2.data.builders.coco_bikecar import build_coco_bikecar
from panext_d2.data.builders.coco_person import build_coco_person
from panext_d2.data.builders.siim_acr import build_siim_acr
from panext_d2.data.catalog.builtin import register_all
from tests.conftest import COCO_SAMPLES

NAMES = (
    [f"coco_person_{s}" for s in ("train", "val")]
    + [f"coco_isb_shapes{m}_{s}" for m in ("", "_matched") for s in ("train", "val")]
    + [f"coco_bikecar_{s}" for s in ("train", "val")]
    + [f"siim_acr_{s}" for s in ("train", "val", "test")]
    + [f"cityscapes_person_crops_{size}_bg{bg}_{s}" for size in ("320x192", "160x96")
       for bg in (0, 5, 10) for s in ("train", "val")]
)


@pytest.fixture
def registered(tmp_path):
    """Register every name under tmp_path; restore the default registration afterwards."""
    register_all(str(tmp_path))
    yield str(tmp_path)
    register_all(os.getenv("DETECTRON2_DATASETS", "datasets"))


def test_all_names_registered_on_import():
    assert set(NAMES) <= set(DatasetCatalog.list())
    assert MetadataCatalog.get("coco_person_train").evaluator_type == "coco_ap50"
    assert MetadataCatalog.get("siim_acr_test").stuff_classes == ["background", "pneumothorax"]
    assert MetadataCatalog.get("cityscapes_person_crops_160x96_bg5_val").ignore_label == 255


@pytest.mark.parametrize("name, tool", [
    ("coco_person_val", "tools/build_coco_person.py"),
    ("coco_isb_shapes_matched_train", "tools/build_coco_person.py"),
    ("coco_bikecar_train", "tools/build_coco_bikecar.py"),
    ("siim_acr_val", "tools/build_siim_acr.py"),
    ("cityscapes_person_crops_320x192_bg10_val", "tools/build_cityscapes_person_crops.py"),
])
def test_missing_files_raise_with_build_command(registered, name, tool):
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get(name)
    message = str(error.value)
    assert registered in message and tool in message and "not found" in message


def test_coco_sets_from_real_samples(registered):
    os.makedirs(os.path.join(registered, "coco", "annotations"))
    shutil.copy(os.path.join(COCO_SAMPLES, "instances_detection_format.json"),
                os.path.join(registered, "coco", "annotations", "instances_val2017.json"))
    build_coco_person(registered, ["val"])
    with pytest.raises(FileNotFoundError, match="COCO images"):
        DatasetCatalog.get("coco_person_val")
    os.symlink(os.path.join(COCO_SAMPLES, "images"), os.path.join(registered, "coco", "val2017"))

    dicts = DatasetCatalog.get("coco_person_val")
    assert len(dicts) == 2 and all(os.path.exists(d["file_name"]) for d in dicts)
    assert sum(len(d["annotations"]) for d in dicts) == 28
    assert {a["category_id"] for d in dicts for a in d["annotations"]} == {0}
    meta = MetadataCatalog.get("coco_person_val")
    assert meta.thing_classes == ["person"] and meta.json_file.startswith(registered)
    matched = DatasetCatalog.get("coco_isb_shapes_matched_val")
    full = DatasetCatalog.get("coco_isb_shapes_val")
    assert [d["image_id"] for d in matched] == [d["image_id"] for d in full]

    build_coco_bikecar(registered, ["val"])
    bikecar = DatasetCatalog.get("coco_bikecar_val")
    assert [d["foreground_classes"] for d in bikecar] == [[], []]
    assert all(os.path.exists(d["sem_seg_file_name"]) for d in bikecar)
    assert all(os.path.exists(d["file_name"]) for d in bikecar)
    assert MetadataCatalog.get("coco_bikecar_val").stuff_classes == ["background", "bicycle",
                                                                     "car"]


def test_siim_and_crops(registered):
    siim = os.path.join(registered, "siim_acr")
    os.makedirs(os.path.join(siim, "images"))
    rows = ["ImageId,EncodedPixels"]
    for i in range(10):
        cv2.imwrite(os.path.join(siim, "images", f"id{i}.png"), np.full((4, 4), 9, np.uint8))
        rows.append(f"id{i},{'0 3' if i < 3 else '-1'}")
    with open(os.path.join(siim, "train-rle.csv"), "w") as f:
        f.write("\n".join(rows))
    build_siim_acr(registered)
    dicts = sum((DatasetCatalog.get(f"siim_acr_{s}") for s in ("train", "val", "test")), [])
    assert sorted(d["image_id"] for d in dicts) == [f"id{i}" for i in range(10)]
    assert sum(bool(d["foreground_classes"]) for d in dicts) == 3
    mask = cv2.imread(next(d["sem_seg_file_name"] for d in dicts if d["image_id"] == "id0"),
                      cv2.IMREAD_UNCHANGED)
    assert mask[:3, 0].tolist() == [1, 1, 1] and mask.sum() == 3

    gt = os.path.join(registered, "cityscapes", "gtFine", "val", "ulm")
    left = os.path.join(registered, "cityscapes", "leftImg8bit", "val", "ulm")
    os.makedirs(gt)
    os.makedirs(left)
    ids = np.zeros((40, 60), np.uint16)
    ids[5:25, 10:16] = 24000
    ids[10:30, 40:50] = 24001
    cv2.imwrite(os.path.join(gt, "ulm_000000_000019_gtFine_instanceIds.png"), ids)
    cv2.imwrite(os.path.join(left, "ulm_000000_000019_leftImg8bit.png"),
                np.full((40, 60, 3), 7, np.uint8))
    build_cityscapes_person_crops(registered, ["val"])
    crops = DatasetCatalog.get("cityscapes_person_crops_320x192_bg5_val")
    assert len(crops) == 2
    assert all(d["foreground_classes"] == [1] and (d["height"], d["width"]) == (320, 192)
               for d in crops)
    assert all(os.path.exists(d["file_name"]) and os.path.exists(d["sem_seg_file_name"])
               for d in crops)
