import numpy as np
import pytest
import torch
from PIL import Image

from panext_d2.data import MAPPER_REGISTRY, build_dataset_mapper
from panext_d2.data.mappers.semantic import SemanticMapper

H, W = 20, 30


@pytest.fixture
def record(tmp_path):
    label = np.zeros((H, W), dtype=np.uint8)
    label[:, :5] = 2  # a car stripe on the left border
    label[0, -1] = 255
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[..., 0] = label * 100  # channel 0 (B in BGR) encodes the label
    Image.fromarray(image[..., ::-1].copy()).save(tmp_path / "img.png")  # stored as RGB
    Image.fromarray(label).save(tmp_path / "lab.png")
    return {
        "file_name": str(tmp_path / "img.png"),
        "sem_seg_file_name": str(tmp_path / "lab.png"),
        "height": H,
        "width": W,
        "image_id": 3,
        "foreground_classes": [2],
    }


def test_registered(cfg):
    assert MAPPER_REGISTRY.get("semantic") is SemanticMapper
    cfg.INPUT.DATASET_MAPPER_NAME = "semantic"
    assert isinstance(build_dataset_mapper(cfg, is_train=True), SemanticMapper)


def test_train_resize_flip_alignment(cfg, record):
    cfg.INPUT.SEMANTIC.SIZE = (H, W)
    mapper = SemanticMapper(cfg, is_train=True)
    flipped = 0
    for _ in range(12):
        out = mapper(record)
        assert out["image"].shape == (3, H, W) and out["image"].dtype == torch.uint8
        assert out["sem_seg"].shape == (H, W) and out["sem_seg"].dtype == torch.int64
        assert out["foreground_classes"] == [2] and (out["height"], out["width"]) == (H, W)
        seg = out["sem_seg"]
        valid = seg != 255
        assert torch.equal(
            out["image"][0][valid].long(), seg[valid] * 100
        )  # image and labels move together
        flipped += bool(seg[0, -1] == 2)
    assert 0 < flipped < 12
    assert record["sem_seg_file_name"].endswith("lab.png")  # input record untouched


def test_fixed_size_and_nearest_labels(cfg, record):
    cfg.INPUT.SEMANTIC.SIZE = (8, 16)
    cfg.INPUT.SEMANTIC.HFLIP = False
    out = SemanticMapper(cfg, is_train=True)(record)
    assert out["image"].shape == (3, 8, 16) and out["sem_seg"].shape == (8, 16)
    assert set(out["sem_seg"].unique().tolist()) <= {0, 2, 255}
    test = SemanticMapper(cfg, is_train=False)(record)
    assert test["image"].shape == (3, 8, 16) and "sem_seg" not in test
    assert (test["height"], test["width"]) == (H, W)
