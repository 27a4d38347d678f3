"""SSD-ISB: SSD with instance segmentation branches (Kolhatkar (2020) ch. 3, Fig. 3.3 / 3.9).

The detector is :class:`~panext_d2.modeling.ssd.SSD`, unchanged; :class:`ISBHead` adds the
masks:

* training: branches crop the **ground-truth** boxes (§3.1.3 "Training", §3.2.1 "Loss"),
  their class selects the mask, the gradient stops at the crops, and
  ``loss_mask = weight x mean BCE`` at the branch resolution against the ground-truth mask
  resized to it (weight 30 Single-Branch, 150 multi-branch);
* inference: branches crop the **detected** boxes (after NMS, best score first, so the
  branch caps keep the best), and each mask is pasted into its encompassing box of the
  output image as ``Instances.pred_masks`` (bool, N x H x W). Detections no branch
  segments are pruned unless ``MODEL.ISB.KEEP_UNMASKED_TEST``.

``inference(..., do_postprocess=False)`` returns the detections in input coordinates with
the raw mask outputs: ``pred_mask_logits`` (N, h, w) zero-padded, ``pred_mask_sizes`` (N, 2)
their valid size, ``pred_mask_boxes`` (N, 4) the encompassing boxes they cover.
"""
from typing import Dict, List

import torch
from torch.nn import functional as F

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Instances

from ..ssd import SSD
from .encompassing import cells_to_boxes
from .head import ISBHead
from .masks import isb_mask_loss, mask_targets, pad_mask_logits, paste_mask_logits, rasterize_masks

__all__ = ["SSDISB"]

_MASK_FIELDS = ("pred_mask_logits", "pred_mask_sizes", "pred_mask_boxes")


def rescale_detections(result: Instances, height: int, width: int) -> Instances:
    """detectron2's ``detector_postprocess`` for boxes: scaled to (height, width), clipped,
    empty boxes dropped, with one index read-back instead of a boolean mask per field."""
    scale_x, scale_y = width / result.image_size[1], height / result.image_size[0]
    result = Instances((height, width), **result.get_fields())
    result.pred_boxes.scale(scale_x, scale_y)
    result.pred_boxes.clip(result.image_size)
    return result[result.pred_boxes.nonempty().nonzero().squeeze(1)]


@META_ARCH_REGISTRY.register()
class SSDISB(SSD):
    @configurable
    def __init__(
        self,
        *,
        isb_head: ISBHead,
        isb_in_features: List[str],
        mask_loss_weight: float,
        mask_threshold: float = 0.0,
        keep_unmasked_test: bool = False,
        **kwargs,
    ):
        """
        Args:
            isb_head: the branches.
            isb_in_features: backbone maps fed to it, stride 32 first.
            mask_loss_weight: multiplies the mask loss.
            mask_threshold: logit threshold of the pasted masks.
            keep_unmasked_test: keep detections without a mask (empty mask) at inference.
            kwargs: :class:`SSD` arguments.
        """
        super().__init__(**kwargs)
        self.isb_head = isb_head
        self.isb_in_features = list(isb_in_features)
        self.mask_loss_weight = mask_loss_weight
        self.mask_threshold = mask_threshold
        self.keep_unmasked_test = keep_unmasked_test

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        c = cfg.MODEL.ISB
        head = ISBHead(cfg, ret["backbone"].output_shape())
        multi = head.routing.is_multi_branch
        ret.update(
            isb_head=head,
            isb_in_features=list(c.IN_FEATURES)[: 1 + c.NUM_SKIPS],
            mask_loss_weight=c.MASK_LOSS_WEIGHT_MULTI if multi else c.MASK_LOSS_WEIGHT_SINGLE,
            mask_threshold=c.MASK_THRESHOLD,
            keep_unmasked_test=c.KEEP_UNMASKED_TEST,
        )
        return ret

    # ---- ISB steps -----------------------------------------------------------------------
    def run_isb(self, features: Dict[str, torch.Tensor], instances: List[Instances], box_field: str, class_field: str):
        """The head on every box of the batch; returns (predictions, boxes per image)."""
        counts = [len(x) for x in instances]
        boxes = torch.cat([x.get(box_field).tensor for x in instances])
        classes = torch.cat([x.get(class_field) for x in instances])
        image_index = torch.repeat_interleave(
            torch.arange(len(instances), device=boxes.device), torch.tensor(counts, device=boxes.device)
        )
        pred = self.isb_head([features[f] for f in self.isb_in_features], boxes, image_index, classes)
        return pred, counts

    def mask_losses(self, features, gt_instances: List[Instances], input_size) -> Dict[str, torch.Tensor]:
        pred, _ = self.run_isb(features, gt_instances, "gt_boxes", "gt_classes")
        masks = []
        for inst in gt_instances:
            if len(inst) == 0:
                continue
            if not inst.has("gt_masks"):
                raise ValueError("SSDISB training needs instance masks (mapper use_instance_mask)")
            m = rasterize_masks(inst.gt_masks, tuple(input_size)).to(self.device)
            masks.append(F.pad(m, (0, input_size[1] - m.shape[2], 0, input_size[0] - m.shape[1])))
        masks = torch.cat(masks) if masks else torch.zeros((0, *input_size), device=self.device)
        crop_boxes = cells_to_boxes(pred.cells, self.isb_head.cell_stride)
        targets = [
            mask_targets(masks, idx, crop_boxes[idx], self.isb_head.output_size(spec))
            for spec, idx in zip(self.isb_head.routing.branches, pred.index)
        ]
        loss = isb_mask_loss(pred.logits, targets)
        # Every branch takes part in the graph even when no box reached it (DDP).
        anchor = sum(p.sum() for p in self.isb_head.parameters()) * 0.0
        return {"loss_mask": self.mask_loss_weight * loss + anchor}

    def predict_masks(self, features, detections: List[Instances]) -> List[Instances]:
        """Adds the raw mask outputs (see the module doc) to the detections."""
        pred, counts = self.run_isb(features, detections, "pred_boxes", "pred_classes")
        logits, sizes = pad_mask_logits(pred.logits, pred.index, pred.branch.numel())
        mask_boxes = cells_to_boxes(pred.cells, self.isb_head.cell_stride)
        keep = torch.ones_like(pred.branch, dtype=torch.bool) if self.keep_unmasked_test else pred.branch >= 0
        results = []
        for det, logit, size, box, kept in zip(
            detections, logits.split(counts), sizes.split(counts), mask_boxes.split(counts), keep.split(counts)
        ):
            det.pred_mask_logits = logit
            det.pred_mask_sizes = size
            det.pred_mask_boxes = box
            results.append(det[kept.nonzero().squeeze(1)])  # one read-back, not one per field
        return results

    def postprocess(self, instances: List[Instances], batched_inputs: List[Dict], image_sizes):
        """Rescale detections to each input's "height" / "width" and paste their masks."""
        processed = []
        for result, inputs, size in zip(instances, batched_inputs, image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            scale = result.pred_mask_boxes.new_tensor([width / size[1], height / size[0]] * 2)
            result = rescale_detections(result, height, width)
            result.pred_masks = paste_mask_logits(
                result.pred_mask_logits,
                result.pred_mask_sizes,
                result.pred_mask_boxes * scale,
                (height, width),
                self.mask_threshold,
            )
            for name in _MASK_FIELDS:
                result.remove(name)
            processed.append({"instances": result})
        return processed

    # ---- entry points --------------------------------------------------------------------
    def extra_losses(self, features, gt_instances, input_size):
        return self.mask_losses(features, gt_instances, input_size)

    def extend_detections(self, features, detections):
        return self.predict_masks(features, detections)
