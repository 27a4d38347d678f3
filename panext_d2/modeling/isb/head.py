"""The instance segmentation branches of SSD-ISB as one head (seed 004 §3.1.5
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

Two choices keep the compute down:

* (exact) a branch's 1x1 skip conv commutes with exact crops and with bilinear resizing, so
  when a branch's skip crops would cover more pixels than the whole skip map (many boxes),
  the map is projected to the branch's 32 channels first and the crops are cut from the
  projection (fewer channels to crop, no pixel convolved twice);
* (a reading of the thesis) the Single-Branch 2x crop + 2x2 max-pool (Mask R-CNN's crop, §3.1.4) is applied to the
  branch input, the stride-32 crop; the skip crops are resized straight to their size unless
  ``pool_skip_crops`` (``MODEL.ISB.POOL_SKIP_CROPS``), see panext_d2/config/isb.py.
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
        }

    def output_size(self, spec: BranchSpec):
        """(h, w) of a branch's masks: its input shape x 2 ** num_skips."""
        factor = 2**self.num_skips
        return spec.shape[0] * factor, spec.shape[1] * factor

    def encompassing(self, boxes: torch.Tensor, grid_size) -> torch.Tensor:
        """(M, 4) cell boxes of (M, 4) XYXY boxes in input pixels, on a grid of ``grid_size``."""
        image_size = (grid_size[0] * self.cell_stride, grid_size[1] * self.cell_stride)
        return encompassing_cells(boxes, image_size, grid_size)

    def _crops(self, spec: BranchSpec, module: ISBBranch, features, image_index, cells):
        """The branch's crops, stride-32 first, and per skip crop whether it was cut from the
        map projected by the branch's skip conv (done when the crops of the branch's boxes
        cover at least as many pixels as the map: never more 1x1-conv work)."""
        crops, projected = [], []
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            pool = spec.pool and (level == 0 or self.pool_skip_crops)
            crop_pixels = image_index.numel() * spec.shape[0] * spec.shape[1] * scale * scale
            project = level > 0 and not pool and crop_pixels >= feature[:, 0].numel()
            if project:
                feature = module.skip[level - 1](feature)
            if spec.resize:
                crops.append(crop_resize_cells(feature, image_index, cells, spec.shape, scale, pool))
            else:
                crops.append(crop_cells(feature, image_index, cells, spec.shape, scale))
            if level > 0:
                projected.append(project)
        return crops, projected

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
            crops, projected = self._crops(spec, module, features, image_index[idx], cells[idx])
            if self.pad_to_max_boxes:
                total = max(features[0].shape[0] * spec.max_boxes, idx.numel())
                crops = [torch.cat([c, c.new_zeros((total - c.shape[0], *c.shape[1:]))]) for c in crops]
            out = module(crops, skips_projected=projected)[: idx.numel()]
            logits.append(out[torch.arange(idx.numel(), device=out.device), classes[idx]])
        return ISBPredictions(cells, branch, index, logits)
