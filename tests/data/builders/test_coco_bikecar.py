import json
import os
import shutil

import cv2
import numpy as np
import pytest

from panext_d2.data.builders.coco_bikecar import build_coco_bikecar, records_json, sem_seg_dir
from tests.conftest import COCO_SAMPLES

REAL_JSON = os.path.join(COCO_SAMPLES, "instances_detection_format.json")


def expected_image1(crowd_value):
    label = np.zeros((10, 20), np.uint8)
    label[0:5, 0:10] = 2  # car
    label[2:4, 5:8] = 1  # smaller bicycle painted over the car
    label[8:10, 10:20] = crowd_value  # crowd car
    return label


def read_records(root):
    with open(records_json(root, "train")) as f:
        return {r["image_id"]: r for r in json.load(f)}


def test_build_crowd_as_class(coco_root):
    stats = build_coco_bikecar(coco_root, ["train"])["train"]
    records = read_records(coco_root)
    assert sorted(records) == [1, 2, 3, 4, 5]  # every image, empty ones included
    label = cv2.imread(
        os.path.join(sem_seg_dir(coco_root, "train"), "000000000001.png"), cv2.IMREAD_UNCHANGED
    )
    np.testing.assert_array_equal(label, expected_image1(2))
    assert records[1]["foreground_classes"] == [1, 2]
    assert records[2]["foreground_classes"] == []
    assert records[3]["foreground_classes"] == [2]
    assert records[1]["file_name"] == "000000000001.jpg"
    # 5 images; pixels: 200 + 100 + 100 + 640*640 + 480*640
    total = 400 + 640 * 640 + 480 * 640
    np.testing.assert_allclose(stats.image_share, [100, 20, 40])
    np.testing.assert_allclose(stats.pixel_share[1:], [100 * 6 / total, 100 * 74 / total])
    assert stats.empty_share == pytest.approx(60)


def test_build_crowd_ignored(coco_root):
    stats = build_coco_bikecar(coco_root, ["train"], crowd="ignore")["train"]
    records = read_records(coco_root)
    label = cv2.imread(
        os.path.join(sem_seg_dir(coco_root, "train"), "000000000001.png"), cv2.IMREAD_UNCHANGED
    )
    np.testing.assert_array_equal(label, expected_image1(255))
    assert records[3]["foreground_classes"] == []
    total = 400 + 640 * 640 + 480 * 640 - 30
    np.testing.assert_allclose(stats.pixel_share[1:], [100 * 6 / total, 100 * 44 / total])
    assert stats.empty_share == pytest.approx(80)
    assert "bicycle" in stats.format("x")


def test_real_val_samples_are_empty(tmp_path):
    os.makedirs(tmp_path / "coco" / "annotations")
    shutil.copy(REAL_JSON, tmp_path / "coco" / "annotations" / "instances_val2017.json")
    stats = build_coco_bikecar(str(tmp_path), ["val"])["val"]
    assert stats.num_images == 2 and stats.empty_share == 100
    masks = sorted(os.listdir(sem_seg_dir(str(tmp_path), "val")))
    assert masks == ["000000142238.png", "000000439180.png"]
    label = cv2.imread(
        os.path.join(sem_seg_dir(str(tmp_path), "val"), masks[0]), cv2.IMREAD_UNCHANGED
    )
    assert label.shape == (427, 640) and not label.any()
