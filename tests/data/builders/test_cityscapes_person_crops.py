import json
import os

import cv2
import numpy as np

from panext_d2.data.builders.cityscapes_person_crops import (
    build_cityscapes_person_crops,
    crop_boxes,
    crop_padded,
    person_instances,
    records_json,
    variant_dir,
)

STEM = "aachen_000000_000019"


def instance_map():
    """64x128 instanceIds: persons 24001 (30x10), 24003 (30x4, right of it), 24002 (30x8 on
    the right border); a person group (24), a rider (25000) and a car (26001)."""
    ids = np.zeros((64, 128), np.uint16)
    ids[10:40, 20:30] = 24001
    ids[10:40, 30:34] = 24003
    ids[30:60, 120:128] = 24002
    ids[0:5, 0:5] = 24
    ids[50:60, 0:10] = 25000
    ids[50:60, 40:60] = 26001
    return ids


def test_person_instances():
    ids, boxes = person_instances(instance_map())
    assert ids.tolist() == [24001, 24002, 24003]
    assert boxes.tolist() == [[20, 10, 30, 40], [120, 30, 128, 60], [30, 10, 34, 40]]


def test_crop_boxes_aspect_centre_and_background():
    box = [[20, 10, 30, 40]]  # 10 wide, 30 high, centre (25, 25)
    assert crop_boxes(box, 5 / 3, 0).tolist() == [[16, 10, 34, 40]]  # width 18
    assert crop_boxes(box, 5 / 3, 10).tolist() == [[14, 7, 36, 43]]  # 22 x 36: 1.2 x
    wide = crop_boxes([[0, 0, 60, 12]], 5 / 3, 5)[0]  # too wide: the height grows
    height, width = wide[3] - wide[1], wide[2] - wide[0]
    assert (width, height) == (66, 110)  # 60 * 1.1, 100 * 1.1
    assert (wide[0] + wide[2]) / 2 == 30 and (wide[1] + wide[3]) / 2 == 6


def test_crop_padded():
    array = np.arange(1, 13).reshape(3, 4)
    np.testing.assert_array_equal(
        crop_padded(array, [2, -1, 6, 2]), [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]]
    )


def write_cityscapes(root, split="train"):
    rng = np.random.default_rng(0)
    gt = os.path.join(root, "cityscapes", "gtFine", split, "aachen")
    left = os.path.join(root, "cityscapes", "leftImg8bit", split, "aachen")
    os.makedirs(gt)
    os.makedirs(left)
    cv2.imwrite(os.path.join(gt, f"{STEM}_gtFine_instanceIds.png"), instance_map())
    cv2.imwrite(
        os.path.join(left, f"{STEM}_leftImg8bit.png"),
        rng.integers(1, 255, (64, 128, 3), dtype=np.uint8),
    )


def read(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def test_build(tmp_path):
    root = str(tmp_path)
    write_cityscapes(root)
    (stats,) = build_cityscapes_person_crops(root, ["train"])
    assert (stats.images, stats.crops) == (1, 3)
    for size in ((320, 192), (160, 96)):
        for bg in (0, 5, 10):
            with open(records_json(root, size, bg, "train")) as f:
                records = json.load(f)
            assert [r["image_id"] for r in records] == [
                f"{STEM}_{i}" for i in (24001, 24002, 24003)
            ]
            out = os.path.join(variant_dir(root, size, bg), "train")
            for r in records:
                assert read(os.path.join(out, "images", r["file_name"])).shape == (*size, 3)
                assert read(os.path.join(out, "masks", r["sem_seg_file_name"])).shape == size
                assert r["foreground_classes"] == [1]

    out = os.path.join(variant_dir(root, (160, 96), 0), "train")
    mask = read(os.path.join(out, "masks", f"{STEM}_24001.png"))
    # crop x 16..34: the person at columns 4..13 of 18 -> 21.3..74.7 of 96; 24003 unlabelled
    assert set(np.unique(mask)) == {0, 1}
    assert mask[:, 23:73].all() and not mask[:, :20].any() and not mask[:, 76:].any()
    # 24002's crop (x 115..133) leaves the image by 5 of 18 columns: zero-padded on the right
    image = read(os.path.join(out, "images", f"{STEM}_24002.png"))
    edge = read(os.path.join(out, "masks", f"{STEM}_24002.png"))
    assert not image[:, 72:].any() and image[:, :60].all(axis=-1).mean() > 0.9
    assert not edge[:, 72:].any() and edge[:, 30:60].any()

    with open(records_json(root, (160, 96), 10, "train")) as f:
        boxes = {r["image_id"]: r["source_box"] for r in json.load(f)}
    assert boxes[f"{STEM}_24001"] == [14, 7, 36, 43]
