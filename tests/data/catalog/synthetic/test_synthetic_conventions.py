from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES, _get_builtin_metadata

from panext_d2.utils.panoptic_conventions import (
    separated_label_map,
    separated_metadata,
    standard_label_map,
    standard_metadata,
)


def test_standard_metadata_equals_detectron2_builtin():
    assert standard_metadata(COCO_CATEGORIES) == _get_builtin_metadata("coco_panoptic_standard")


def test_separated_metadata_equals_detectron2_builtin():
    ours, theirs = separated_metadata(COCO_CATEGORIES), _get_builtin_metadata(
        "coco_panoptic_separated"
    )
    # detectron2 shortens "-other" / "-merged" names; ids, mappings and colours must agree
    short = [n.replace("-other", "").replace("-merged", "") for n in ours["stuff_classes"]]
    assert short == theirs["stuff_classes"]
    for key in ours.keys() - {"stuff_classes"}:
        assert ours[key] == theirs[key], key


def test_label_maps():
    standard = standard_label_map(_get_builtin_metadata("coco_panoptic_standard"))
    assert standard == {c["id"]: i for i, c in enumerate(COCO_CATEGORIES)}
    separated = separated_label_map(_get_builtin_metadata("coco_panoptic_separated"))
    assert {separated[c["id"]] for c in COCO_CATEGORIES if c["isthing"]} == {0}
    assert sorted(separated[c["id"]] for c in COCO_CATEGORIES if not c["isthing"]) == list(
        range(1, 54)
    )
