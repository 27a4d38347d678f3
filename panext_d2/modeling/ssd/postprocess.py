"""SSD inference (TF OD API ``ssd_mobilenet_v1_coco`` post-processing, softmax scores as in
Kolhatkar (2020) §3.1.1), as the API's ``batch_multiclass_non_max_suppression``: per image
and foreground class, every default box above ``score_thresh`` is decoded, clipped to the
image and suppressed by NMS at ``nms_thresh``; the ``max_per_class`` best survivors of each
class are kept (``max_detections_per_class``), then the ``max_detections`` best of the image
(``max_total_detections``). ``topk_per_class`` > 0 caps the candidates per class *before*
NMS (not the API's behaviour; 0 = no cap): a cap at or above the number of default boxes
never binds.

The whole batch is processed at once (images and classes are NMS groups); nothing loops
over boxes, and the function returns early when no score passes the threshold.
"""

from typing import List, Sequence, Tuple

import torch
from torchvision.ops import batched_nms

from detectron2.structures import Boxes, Instances

from ...utils.grouping import rank_in_group
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
    topk_per_class: int = 0,
    max_per_class: int = 100,
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
    if 0 < topk_per_class < num_boxes:
        top_scores, top_index = scores.topk(topk_per_class, dim=1)  # (N, k, K)
    else:
        top_scores = scores
        top_index = torch.arange(num_boxes, device=device)[None, :, None].expand_as(scores)
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

    group = img * num_classes + cls
    kept = batched_nms(boxes.float(), cand_scores.float(), group, nms_thresh)
    # batched_nms returns indices by decreasing score: the first max_per_class of each
    # (image, class) group, then the first max_detections of each image.
    kept = kept[rank_in_group(group[kept], n * num_classes) < max_per_class]
    kept = kept[torch.sort(img[kept], stable=True).indices]
    kept = kept[rank_in_group(img[kept], n) < max_detections]
    per_image = torch.split(kept, torch.bincount(img[kept], minlength=n).tolist())

    results = []
    for size, index in zip(image_sizes, per_image):
        result = Instances(tuple(size))
        result.pred_boxes = Boxes(boxes[index])
        result.scores = cand_scores[index]
        result.pred_classes = cls[index]
        results.append(result)
    return results
