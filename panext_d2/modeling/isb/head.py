"""The instance segmentation branches of SSD-ISB as one head (Kolhatkar (2020) §3.1.5
"Implementation", steps 1-5):

1. encompassing boxes of the given boxes on the stride-32 grid;
2. routing to branches, with per-branch box caps (:mod:`.routing`);
3. per branch, all its crops from the stride-32 map stacked along the batch dimension (exact
   gathers for exact-shape branches, bilinear crop-and-resize for resize branches);
4. the same boxes cropped from the stride-16 / stride-8 maps for the skip steps;
5. the branch, then the mask of each box's class.

The gradient is stopped at each crop (§3.2.1 "Stop Gradient"): the feature maps learn from
detection only. ``pad_to_max_boxes`` reproduces the thesis' zero padding of each branch to
its box cap (TensorFlow needed static shapes); it changes only the compute, never a result.

Three choices keep the compute down:

* (exact) a branch's 1x1 skip conv commutes with exact crops and with bilinear resizing, so
  when a branch's skip crops would cover more pixels than the whole skip map (many boxes),
  the map is projected to the branch's 32 channels first and the crops are cut from the
  projection (fewer channels to crop, no pixel convolved twice);
* (a reading of the thesis) the Single-Branch 2x crop + 2x2 max-pool (Mask R-CNN's crop, §3.1.4) is applied to the
  branch input, the stride-32 crop; the skip crops are resized straight to their size unless
  ``pool_skip_crops`` (``MODEL.ISB.POOL_SKIP_CROPS``), see panext_d2/config/isb.py;
* (exact) a branch crops and runs its boxes ``boxes_per_chunk`` at a time
  (``MODEL.ISB.BOXES_PER_CHUNK``), so its crops and activations stay small enough to be
  reused from the allocator instead of being paged in afresh at every image; pooled branches
  chunk their boxes largest first, so a chunk's crop window (its largest height by its
  largest width) stays close to each box's own size.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec

from .branches import ISBBranch
from .encompassing import cell_shapes, crop_cells, crop_resize_cells, encompassing_cells
from .routing import BranchSpec, ISBRouting, build_isb_routing

__all__ = ["ISBHead", "ISBPredictions", "build_routing_from_cfg"]


@dataclass
class ISBPredictions:
    """cells: (M, 4) encompassing cell boxes; branch: (M,) branch of each box (-1: none);
    index / logits: per branch, its box indices and their (M_b, h_b, w_b) class logits."""

    cells: torch.Tensor
    branch: torch.Tensor
    index: List[torch.Tensor]
    logits: List[torch.Tensor]


def build_routing_from_cfg(cfg) -> ISBRouting:
    c = cfg.MODEL.ISB
    return build_isb_routing(
        c.VARIANT,
        single_branch_shape=c.SINGLE_BRANCH_SHAPE,
        single_branch_pool=c.SINGLE_BRANCH_POOL,
        single_shapes=c.SINGLE_SHAPES,
        remainder_shape=c.REMAINDER_SHAPE,
        multi_shape_thresholds=c.MULTI_SHAPE_THRESHOLDS,
        max_boxes_single_branch=c.MAX_BOXES_SINGLE_BRANCH,
        max_boxes_per_branch=c.MAX_BOXES_PER_BRANCH,
    )


class ISBHead(nn.Module):
    @configurable
    def __init__(
        self,
        *,
        routing: ISBRouting,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        num_classes: int,
        num_skips: int = 2,
        conv_dim: int = 128,
        deconv_dim: int = 32,
        activation: str = "relu",
        stop_gradient: bool = True,
        pad_to_max_boxes: bool = False,
        pool_skip_crops: bool = False,
        boxes_per_chunk: int = 16,
    ):
        """
        Args:
            routing: variant routing; one :class:`ISBBranch` is built per branch.
            in_channels / in_strides: of the stride-32 map, then the skip maps (strides 16, 8).
            num_classes: masks per branch.
            num_skips, conv_dim, deconv_dim, activation: see :class:`ISBBranch`.
            stop_gradient: detach the feature maps before cropping.
            pad_to_max_boxes: zero-pad each branch's crops to images x its box cap.
            pool_skip_crops: pooled branches (Single-Branch) also crop their skip maps at
                twice the size and max-pool them; otherwise only the stride-32 crop is pooled.
            boxes_per_chunk: boxes cropped and run through a branch together (memory only:
                results do not depend on it).
        """
        super().__init__()
        self.routing = routing
        self.num_skips = num_skips
        self.cell_stride = int(in_strides[0])
        scales = [self.cell_stride // int(s) for s in in_strides[: 1 + num_skips]]
        if any(self.cell_stride != s * int(t) for s, t in zip(scales, in_strides)):
            raise ValueError(f"skip strides {list(in_strides)} must divide the crop stride")
        self.scales = scales
        self.stop_gradient = stop_gradient
        self.pad_to_max_boxes = pad_to_max_boxes
        self.pool_skip_crops = pool_skip_crops
        if boxes_per_chunk < 1:
            raise ValueError(f"boxes_per_chunk must be at least 1, got {boxes_per_chunk}")
        self.boxes_per_chunk = boxes_per_chunk
        self.branches = nn.ModuleList(
            ISBBranch(
                in_channels[: 1 + num_skips],
                num_classes,
                num_skips=num_skips,
                conv_dim=conv_dim,
                deconv_dim=deconv_dim,
                activation=activation,
            )
            for _ in routing.branches
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        c = cfg.MODEL.ISB
        features = list(c.IN_FEATURES)[: 1 + c.NUM_SKIPS]
        missing = [f for f in features if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.ISB.IN_FEATURES {missing} are not backbone outputs {list(input_shape)}: "
                "add them to MODEL.MOBILENET.OUT_FEATURES"
            )
        return {
            "routing": build_routing_from_cfg(cfg),
            "in_channels": [input_shape[f].channels for f in features],
            "in_strides": [input_shape[f].stride for f in features],
            "num_classes": cfg.MODEL.SSD.NUM_CLASSES,
            "num_skips": c.NUM_SKIPS,
            "conv_dim": c.CONV_DIM,
            "deconv_dim": c.DECONV_DIM,
            "activation": c.ACTIVATION,
            "stop_gradient": c.STOP_GRADIENT,
            "pad_to_max_boxes": c.PAD_TO_MAX_BOXES,
            "pool_skip_crops": c.POOL_SKIP_CROPS,
            "boxes_per_chunk": c.BOXES_PER_CHUNK,
        }

    def output_size(self, spec: BranchSpec):
        """(h, w) of a branch's masks: its input shape x 2 ** num_skips."""
        factor = 2**self.num_skips
        return spec.shape[0] * factor, spec.shape[1] * factor

    def encompassing(self, boxes: torch.Tensor, grid_size) -> torch.Tensor:
        """(M, 4) cell boxes of (M, 4) XYXY boxes in input pixels, on a grid of ``grid_size``."""
        image_size = (grid_size[0] * self.cell_stride, grid_size[1] * self.cell_stride)
        return encompassing_cells(boxes, image_size, grid_size)

    def _branch_maps(self, spec: BranchSpec, module: ISBBranch, features, num_boxes: int):
        """The maps a branch crops, stride-32 first, and per skip map whether it was projected
        by the branch's skip conv first (done when the crops of the branch's boxes cover at
        least as many pixels as the map: never more 1x1-conv work)."""
        maps, projected = [features[0]], []
        for level in range(1, len(features)):
            feature, scale = features[level], self.scales[level]
            pool = spec.pool and self.pool_skip_crops
            crop_pixels = num_boxes * spec.shape[0] * spec.shape[1] * scale * scale
            project = not pool and crop_pixels >= feature[:, 0].numel()
            maps.append(module.skip[level - 1](feature) if project else feature)
            projected.append(project)
        return maps, projected

    def _crops(self, spec: BranchSpec, maps, image_index, cells):
        """The crops of some boxes of a branch from its maps (:meth:`_branch_maps`)."""
        crops = []
        for level, (feature, scale) in enumerate(zip(maps, self.scales)):
            if spec.resize:
                pool = spec.pool and (level == 0 or self.pool_skip_crops)
                crops.append(crop_resize_cells(feature, image_index, cells, spec.shape, scale, pool))
            else:
                crops.append(crop_cells(feature, image_index, cells, spec.shape, scale))
        return crops

    def _run_branch(self, spec, module, features, image_index, cells, num_padded: int):
        """The branch's (M, num_classes, h, w) logits, ``boxes_per_chunk`` boxes at a time
        (crops and branch activations stay small enough to be reused from the allocator's
        free lists instead of being paged in afresh), plus ``num_padded`` zero crops whose
        outputs are dropped (``pad_to_max_boxes``)."""
        maps, projected = self._branch_maps(spec, module, features, image_index.numel() + num_padded)
        order = torch.arange(image_index.numel(), device=cells.device)
        if spec.pool:  # chunks of similar box sizes: smaller crop windows
            order = torch.argsort(cell_shapes(cells).prod(dim=1), descending=True, stable=True)
        outputs = []
        for chunk in order.split(self.boxes_per_chunk):
            crops = self._crops(spec, maps, image_index[chunk], cells[chunk])
            outputs.append(module(crops, skips_projected=projected))
        for begin in range(0, num_padded, self.boxes_per_chunk):
            n = min(self.boxes_per_chunk, num_padded - begin)
            crops = [
                m.new_zeros((n, m.shape[1], spec.shape[0] * scale, spec.shape[1] * scale))
                for m, scale in zip(maps, self.scales)
            ]
            module(crops, skips_projected=projected)
        logits = torch.cat(outputs)
        return logits[torch.argsort(order)] if spec.pool else logits

    def forward(
        self,
        features: Sequence[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        classes: torch.Tensor,
    ) -> ISBPredictions:
        """
        Args:
            features: the (B, C, H, W) stride-32 map, then the skip maps.
            boxes: (M, 4) XYXY boxes of the whole batch, in input pixels, in priority order
                per image (they fill the branch caps first).
            image_index: (M,) image of each box.
            classes: (M,) class of each box (selects its mask).
        """
        features = list(features[: 1 + self.num_skips])
        if self.stop_gradient:
            features = [f.detach() for f in features]
        cells = self.encompassing(boxes, features[0].shape[-2:])
        branch = self.routing.route(cell_shapes(cells), image_index)
        index = self.routing.groups(branch)
        logits = []
        for spec, module, idx in zip(self.routing.branches, self.branches, index):
            if idx.numel() == 0:
                logits.append(features[0].new_zeros((0, *self.output_size(spec))))
                continue
            padded = 0
            if self.pad_to_max_boxes:
                padded = max(features[0].shape[0] * spec.max_boxes - idx.numel(), 0)
            out = self._run_branch(spec, module, features, image_index[idx], cells[idx], padded)
            logits.append(out[torch.arange(idx.numel(), device=out.device), classes[idx]])
        return ISBPredictions(cells, branch, index, logits)
