"""SSD inference (TF OD API ``ssd_mobilenet_v1_coco`` post-processing, softmax scores as in
Kolhatkar (2020) §3.1.1): per image and foreground class, the ``topk_per_class`` best default boxes
above ``score_thresh`` are decoded, clipped to the image, suppressed per class by NMS at
``nms_thresh``, and the ``max_detections`` best of the image are kept.

The whole batch is processed at once (images and classes are NMS groups); nothing loops
over boxes, and the function returns early when no score passes the threshold.
"""

from typing import List, Sequence, Tuple

import torch
from torchvision.ops import batched_nms

from detectron2.structures import Boxes, Instances

from .box_coder import SSDBoxCoder

__all__ = ["ssd_inference"]


def _empty(image_size, device) -> Instances:
    result = Instances(image_size)
    result.pred_boxes = Boxes(torch.zeros(0, 4, device=device))
    result.scores = torch.zeros(0, device=device)
    result.pred_classes = torch.zeros(0, dtype=torch.long, device=device)
    return result


def ssd_inference(
    pred_logits: torch.Tensor,
    pred_deltas: torch.Tensor,
    default_boxes: torch.Tensor,
    box_coder: SSDBoxCoder,
    image_sizes: Sequence[Tuple[int, int]],
    *,
    score_thresh: float = 1e-8,
    nms_thresh: float = 0.6,
    topk_per_class: int = 100,
    max_detections: int = 100,
) -> List[Instances]:
    """
    Args:
        pred_logits: (N, A, K + 1), index 0 = background.
        pred_deltas: (N, A, 4).
        default_boxes: (A, 4) XYXY.
        image_sizes: (h, w) of each image inside the input tensor (boxes are clipped to it).
    Returns:
        One :class:`Instances` per image with ``pred_boxes``, ``scores``, ``pred_classes``
        (0-based foreground class), best score first, in input-tensor coordinates.
    """
    n, num_boxes, k1 = pred_logits.shape
    num_classes = k1 - 1
    device = pred_logits.device
    scores = pred_logits.softmax(-1)[..., 1:]  # (N, A, K)
    top_scores, top_index = scores.topk(min(topk_per_class, num_boxes), dim=1)  # (N, k, K)
    candidates = top_scores > score_thresh
    if not bool(candidates.any()):
        return [_empty(tuple(s), device) for s in image_sizes]

    img, rank, cls = candidates.nonzero(as_tuple=True)
    cand_scores = top_scores[img, rank, cls]
    box_index = top_index[img, rank, cls]
    boxes = box_coder.decode(pred_deltas[img, box_index], default_boxes[box_index])
    # (sizes are tensors while tracing, e.g. for fvcore's FLOP count)
    hw = torch.stack([torch.as_tensor(s, device=device, dtype=boxes.dtype) for s in image_sizes])[img]
    upper = hw.flip(1).repeat(1, 2)  # (w, h, w, h)
    boxes = torch.minimum(boxes.clamp(min=0), upper)

    kept = batched_nms(boxes.float(), cand_scores.float(), img * num_classes + cls, nms_thresh)
    # batched_nms returns indices by decreasing score; regroup by image, keeping that order.
    kept = kept[torch.sort(img[kept], stable=True).indices]
    kept_img = img[kept]
    counts = torch.bincount(kept_img, minlength=n)
    starts = counts.cumsum(0) - counts
    position = torch.arange(kept.numel(), device=device) - starts[kept_img]
    kept = kept[position < max_detections]
    per_image = torch.split(kept, counts.clamp(max=max_detections).tolist())

    results = []
    for size, index in zip(image_sizes, per_image):
        result = Instances(tuple(size))
        result.pred_boxes = Boxes(boxes[index])
        result.scores = cand_scores[index]
        result.pred_classes = cls[index]
        results.append(result)
    return results
