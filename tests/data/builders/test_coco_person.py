import json
import os
import shutil

import numpy as np
from pycocotools.coco import COCO

from panext_d2.data.builders.cells import ISB_SHAPES
from panext_d2.data.builders.coco_person import (
    build_coco_person,
    format_coco_person,
    isb_json,
    person_json,
)
from tests.conftest import COCO_SAMPLES

REAL_JSON = os.path.join(COCO_SAMPLES, "instances_detection_format.json")


def test_build_on_fake_coco(coco_root):
    (stats,) = build_coco_person(coco_root, ["train"])
    person = COCO(person_json(coco_root, "train"))
    assert sorted(person.getImgIds()) == [1, 2, 4, 5]
    assert len(person.getAnnIds()) == 7
    assert [c["name"] for c in person.loadCats(person.getCatIds())] == ["person"]

    isb_all = COCO(isb_json(coco_root, "train"))
    isb_matched = COCO(isb_json(coco_root, "train", matched=True))
    assert sorted(isb_all.getImgIds()) == sorted(isb_matched.getImgIds()) == [2, 4]
    assert sorted(isb_all.getAnnIds()) == [5, 8, 9, 10, 11]
    assert sorted(isb_matched.getAnnIds()) == [5, 8, 9]

    expected = np.zeros(len(ISB_SHAPES) + 1, dtype=int)
    for shape in [(7, 2), (6, 2), (2, 2)]:
        expected[ISB_SHAPES.index(shape)] = 1
    expected[-1] = 4
    np.testing.assert_array_equal(stats.shape_counts, expected)
    assert (stats.person_images, stats.person_annotations, stats.isb_images) == (4, 7, 2)
    table = format_coco_person([stats])
    assert "7x2" in table and "Other" in table


def test_build_on_real_coco_val_samples(tmp_path):
    os.makedirs(tmp_path / "coco" / "annotations")
    shutil.copy(REAL_JSON, tmp_path / "coco" / "annotations" / "instances_val2017.json")
    (stats,) = build_coco_person(str(tmp_path), ["val"])
    person = COCO(person_json(str(tmp_path), "val"))
    # both images hold 13 persons and a crowd person region
    assert sorted(person.getImgIds()) == [142238, 439180]
    assert len(person.getAnnIds()) == 28 == stats.person_annotations
    assert stats.shape_counts.sum() == 28
    with open(isb_json(str(tmp_path), "val", matched=True)) as f:
        matched = json.load(f)
    assert len(matched["annotations"]) == stats.isb_matched_annotations
    assert {a["category_id"] for a in matched["annotations"]} <= {1}
