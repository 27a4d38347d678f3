"""demo/demo.py and demo/predictor.py with a tiny randomly initialised model."""
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import Boxes, Instances

from tests.tools.conftest import load_script, tiny_semseg_yaml



@pytest.fixture(scope="module")
def demo():
    return load_script("demo/demo.py", "panext_demo")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny_semseg.yaml"
    path.write_text(tiny_semseg_yaml(max_size_test=96))
    return str(path)


def write_images(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"im{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def test_demo_folder_writes_one_png_per_image(demo, config, tmp_path):
    sizes = [(48, 64), (40, 56), (64, 64)]
    write_images(tmp_path / "images", sizes)
    out = tmp_path / "vis"
    written = demo.main(["--config-file", config, "--input", str(tmp_path / "images"),
                         "--output", str(out)])
    assert sorted(os.listdir(out)) == ["im0.png", "im1.png", "im2.png"]
    assert len(written) == 3
    for i, (h, w) in enumerate(sizes):
        image = cv2.imread(str(out / f"im{i}.png"))
        assert image.shape == (h, w, 3)


def test_demo_registered_dataset_max_images(demo, config, tmp_path):
    paths = write_images(tmp_path / "ds", [(32, 48), (32, 48), (32, 48)])
    name = f"demo_test_{os.getpid()}"
    DatasetCatalog.register(name, lambda: [{"file_name": p, "image_id": i, "height": 32,
                                            "width": 48} for i, p in enumerate(paths)])
    MetadataCatalog.get(name).set(stuff_classes=["x", "y", "z"])
    try:
        demo.main(["--config-file", config, "--dataset", name, "--max-images", "2",
                   "--output", str(tmp_path / "out"), "--opts", "MODEL.WEIGHTS", ""])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert sorted(os.listdir(tmp_path / "out")) == ["im0.png", "im1.png"]


def test_demo_video(demo, config, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, dtype=np.uint8))
    writer.release()
    demo.main(["--config-file", config, "--input", str(video), "--output", str(tmp_path / "o")])
    capture = cv2.VideoCapture(str(tmp_path / "o" / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 3
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64


def test_demo_missing_and_unreadable_inputs(demo, config, tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        demo.main(["--config-file", config, "--input", missing, "--output", str(tmp_path / "o")])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        demo.main(["--config-file", config, "--input", str(broken), "--output",
                   str(tmp_path / "o")])


def test_render_prefers_panoptic_then_instances_then_sem_seg(demo):
    from predictor import render

    h, w = 20, 30
    image = np.zeros((h, w, 3), dtype=np.uint8)
    instances = Instances((h, w), pred_boxes=Boxes(torch.tensor([[2.0, 2.0, 12.0, 12.0]] * 2)),
                          scores=torch.tensor([0.9, 0.1]), pred_classes=torch.tensor([4, 0]),
                          pred_masks=torch.zeros(2, h, w, dtype=torch.bool))
    panoptic = torch.zeros(h, w, dtype=torch.int32)
    panoptic[:10] = 1
    panoptic[10:] = 2
    segments = [{"id": 1, "category_id": 2, "isthing": True, "score": 0.9},
                {"id": 2, "category_id": 5, "isthing": False, "area": 300}]
    sem_seg = torch.rand(6, h, w)
    meta = Metadata(name="render_test", thing_classes=["a"], stuff_classes=["s"])

    out, kind = render(image, {"panoptic_seg": (panoptic, segments), "instances": instances,
                               "sem_seg": sem_seg}, meta)
    assert kind == "panoptic_seg" and out.shape == (h, w, 3)
    out, kind = render(image, {"instances": instances, "sem_seg": sem_seg}, meta, 0.5)
    assert kind == "instances" and out.shape == (h, w, 3) and out.any()
    out, kind = render(image, {"sem_seg": sem_seg}, meta)
    assert kind == "sem_seg" and out.shape == (h, w, 3)
    with pytest.raises(ValueError, match="none of"):
        render(image, {"proposals": None}, meta)
    assert meta.thing_classes == ["a"]  # the padded names went to a copy


def test_expand_inputs_glob(demo, tmp_path):
    from predictor import expand_inputs

    paths = write_images(tmp_path, [(8, 8), (8, 8)])
    assert expand_inputs([str(tmp_path / "*.png")]) == sorted(paths)
    with pytest.raises(FileNotFoundError, match="none_"):
        expand_inputs([str(tmp_path / "none_*.jpg")])
    assert "predictor" in sys.modules


def test_demo_folder_skips_an_unreadable_image_and_goes_on(demo, config, tmp_path, caplog):
    write_images(tmp_path / "images", [(48, 64), (40, 56)])
    (tmp_path / "images" / "im1.png").write_bytes(b"not an image")
    written = demo.main(["--config-file", config, "--input", str(tmp_path / "images"),
                         "--output", str(tmp_path / "vis")])
    assert [os.path.basename(p) for p in written] == ["im0.png"]
    assert "im1.png" in caplog.text


def test_demo_truncated_checkpoint_is_named(demo, config, tmp_path):
    weights = tmp_path / "model_final.pth"
    weights.write_bytes(b"PK\x03\x04 truncated")
    write_images(tmp_path / "images", [(48, 64)])
    with pytest.raises(RuntimeError, match="model_final.pth"):
        demo.main(["--config-file", config, "--input", str(tmp_path / "images"),
                   "--output", str(tmp_path / "vis"), "--opts", "MODEL.WEIGHTS", str(weights)])
