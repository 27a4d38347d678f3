"""The inputs models are measured on: one image (a file resized, or seeded uniform noise) as
detectron2-format input dicts, and the load a model's outputs carried."""
import os
from typing import Dict, List, Optional

import numpy as np
import torch


def benchmark_image(height: int, width: int, path: Optional[str] = None, fmt: str = "BGR",
                    seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 image: the file at ``path`` (in ``fmt``) resized to (height, width), or
    uniform noise from a fixed seed."""
    if path is None:
        return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    import cv2
    from detectron2.data.detection_utils import read_image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    image = read_image(path, format=fmt)
    return np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))


def make_inputs(image: np.ndarray, batch_size: int = 1, channels_last: bool = False) -> List[Dict]:
    """detectron2 model inputs: ``batch_size`` dicts with a CHW uint8 ``image`` and the
    ``height``/``width`` to report outputs at. With ``channels_last`` the CHW tensor is a view
    of the HWC array (channels-last strides) instead of a contiguous copy."""
    height, width = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if not channels_last:
        tensor = tensor.contiguous()
    return [{"image": tensor, "height": height, "width": width} for _ in range(batch_size)]


def count_detections(outputs: List[Dict]) -> Optional[float]:
    """Mean number of ``instances`` per image of a detectron2 model's outputs (None for
    models without instance outputs)."""
    counts = [len(o["instances"]) for o in outputs if isinstance(o, dict) and "instances" in o]
    return sum(counts) / len(counts) if counts else None
