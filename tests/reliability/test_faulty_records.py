"""Faulty records meet clear errors (naming the file and what was expected) or the right
values: panoptic PNGs that do not match their JSON or image, unknown categories,
registrations without panoptic annotations, out-of-range and palette label maps, and
16-bit images through every mapper."""
import json
import logging
import shutil

import numpy as np
import pytest
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json
from PIL import Image

from panext_d2.data.mappers.detection import DetectionDatasetMapper
from panext_d2.data.mappers.panext import PaNeXtPanopticMapper
from panext_d2.utils.panoptic_conventions import class_index_maps
from panext_d2.data.mappers.semantic import SemanticMapper
from panext_d2.data.mappers.ssd import SSDDatasetMapper
from tests.conftest import COCO_SAMPLES

META = _get_builtin_metadata("coco_panoptic_standard")


@pytest.fixture
def samples(tmp_path):
    """A writable copy of the COCO samples and its records (standard convention)."""
    root = tmp_path / "samples"
    shutil.copytree(COCO_SAMPLES, root)
    records = load_coco_panoptic_json(
        str(root / "panoptic_examples.json"), str(root / "images"), str(root / "panoptic"), META
    )
    return root, records


def _panext_mapper():
    class Meta(dict):
        __getattr__ = dict.get
    thing_index, stuff_index = class_index_maps(Meta(META))
    return PaNeXtPanopticMapper(
        True, augmentations=[], image_format="RGB", thing_index=thing_index, stuff_index=stuff_index
    )


def test_good_records_map(samples):
    _, records = samples
    out = _panext_mapper()(records[0])
    assert len(out["instances"]) > 0


def test_record_without_panoptic_annotation_names_the_registration(samples):
    _, records = samples
    record = {k: v for k, v in records[0].items() if k != "pan_seg_file_name"}
    with pytest.raises(KeyError, match="000000142238.jpg.*register_coco_panoptic"):
        _panext_mapper()(record)


def test_panoptic_png_of_another_size(samples):
    root, records = samples
    png = records[0]["pan_seg_file_name"]
    Image.open(png).resize((320, 200), Image.NEAREST).save(png)
    with pytest.raises(ValueError, match="000000142238.png is 320x200.*640x427"):
        _panext_mapper()(records[0])


def test_panoptic_ids_that_match_no_json_segment(samples):
    _, records = samples
    png = records[0]["pan_seg_file_name"]
    rgb = np.array(Image.open(png))
    Image.fromarray(rgb[..., ::-1].copy()).save(png)  # BGR-encoded ids: none matches
    with pytest.raises(ValueError, match="000000142238.png holds only 1 of the 18"):
        _panext_mapper()(records[0])


def test_partial_id_mismatch_warns_naming_the_png(samples, caplog):
    _, records = samples
    record = dict(records[0])
    record["segments_info"] = record["segments_info"] + [
        dict(record["segments_info"][0], id=123456789)
    ]
    with caplog.at_level(logging.WARNING):
        _panext_mapper()(record)
    assert "000000142238.png" in caplog.text and "123456789" in caplog.text


def test_unknown_category_names_png_and_category(samples):
    _, records = samples
    record = dict(records[0])
    record["segments_info"] = [dict(s) for s in record["segments_info"]]
    record["segments_info"][0]["category_id"] = 999
    with pytest.raises(KeyError, match="000000142238.png.*category 999"):
        _panext_mapper()(record)


@pytest.mark.parametrize("mapper_class", [SemanticMapper, DetectionDatasetMapper])
def test_out_of_range_semantic_label_names_the_file(tmp_path, mapper_class):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "image.png")
    labels = np.zeros((16, 16), np.uint8)
    labels[3, 3], labels[4, 4] = 7, 255
    palette = Image.fromarray(labels, "P")
    palette.putpalette([0, 0, 0, 200, 30, 30] * 128)
    palette.save(tmp_path / "labels.png")
    record = {"file_name": str(tmp_path / "image.png"), "sem_seg_file_name": str(tmp_path / "labels.png")}
    mapper = mapper_class(True, augmentations=[], image_format="RGB", num_classes=3)
    with pytest.raises(ValueError, match=r"labels.png holds \[7\].*0..2.*255"):
        mapper(dict(record))
    ok = mapper_class(True, augmentations=[], image_format="RGB", num_classes=8)(dict(record))
    assert ok["sem_seg"][3, 3] == 7 and ok["sem_seg"][4, 4] == 255  # palette indices, not luminance


@pytest.mark.parametrize("mapper_class", [DetectionDatasetMapper, SSDDatasetMapper, SemanticMapper])
def test_16bit_images_reach_the_model_rescaled(tmp_path, mapper_class):
    values = np.full((32, 32), 32768, np.uint16)
    Image.fromarray(values).save(tmp_path / "xray.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mask.png")
    record = {"file_name": str(tmp_path / "xray.png"), "sem_seg_file_name": str(tmp_path / "mask.png"),
              "height": 32, "width": 32}
    if mapper_class is SemanticMapper:
        mapper = SemanticMapper(True, augmentations=[], image_format="BGR")
    else:
        mapper = mapper_class(True, augmentations=[], image_format="BGR")
    image = mapper(record)["image"]
    assert image.shape == (3, 32, 32) and (image == 128).all()


def test_too_elongated_image_is_named(tmp_path):
    from detectron2.data import transforms as T

    Image.fromarray(np.zeros((30, 20000, 3), np.uint8)).save(tmp_path / "strip.png")
    record = {"file_name": str(tmp_path / "strip.png"), "height": 30, "width": 20000}
    mapper = DetectionDatasetMapper(False, augmentations=[T.ResizeShortestEdge(128, 128)],
                                    image_format="RGB")
    with pytest.raises(ValueError, match="strip.png .20000x30. cannot be resized"):
        mapper(record)
