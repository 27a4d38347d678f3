import numpy as np
from PIL import Image

from detectron2.structures import BoxMode

from panext_d2.data.mappers import MAPPER_REGISTRY, build_dataset_mapper


def _record(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((40, 80, 3), dtype=np.uint8)).save(path)
    return {
        "file_name": str(path),
        "height": 40,
        "width": 80,
        "image_id": 0,
        "annotations": [
            {
                "bbox": [8.0, 4.0, 32.0, 20.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "segmentation": [[8.0, 4.0, 40.0, 4.0, 40.0, 24.0, 8.0, 24.0]],
                "iscrowd": 0,
            }
        ],
    }


def test_fixed_size_with_boxes_and_masks(cfg, tmp_path):
    assert "ssd" in MAPPER_REGISTRY.names()
    cfg.INPUT.DATASET_MAPPER_NAME = "ssd"
    cfg.INPUT.SSD_SIZE = 64
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.RANDOM_FLIP = "none"
    out = build_dataset_mapper(cfg, is_train=True)(_record(tmp_path))
    assert tuple(out["image"].shape) == (3, 64, 64)
    inst = out["instances"]
    # x scaled by 64/80, y by 64/40
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy(), [[6.4, 6.4, 32.0, 38.4]], rtol=1e-5)
    assert inst.gt_classes.tolist() == [0]
    assert tuple(inst.gt_masks.tensor.shape) == (1, 64, 64)
    # polygon x 8..40 -> 6.4..32, y 4..24 -> 6.4..38.4
    assert inst.gt_masks.tensor[0, 20, 20] and not inst.gt_masks.tensor[0, 20, 40]

    test = build_dataset_mapper(cfg, is_train=False)(_record(tmp_path))
    assert tuple(test["image"].shape) == (3, 64, 64) and "instances" not in test
    assert (test["height"], test["width"]) == (40, 80)
