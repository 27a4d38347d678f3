"""SSD-ISB's instance segmentation branches (Kolhatkar (2020) ch. 3) and the SSDISB meta-architecture."""
from .branches import ISBBranch
from .encompassing import (
    cell_shapes,
    cells_to_boxes,
    crop_cells,
    crop_resize_cells,
    encompassing_cells,
)
from .head import ISBHead, ISBPredictions, build_routing_from_cfg
from .masks import isb_mask_loss, mask_targets, pad_mask_logits, paste_mask_logits, rasterize_masks
from .meta_arch import SSDISB
from .routing import ISB_VARIANTS, BranchSpec, ISBRouting, build_isb_routing

__all__ = [
    "ISBBranch",
    "ISBHead",
    "ISBPredictions",
    "ISBRouting",
    "BranchSpec",
    "ISB_VARIANTS",
    "SSDISB",
    "build_isb_routing",
    "build_routing_from_cfg",
    "cell_shapes",
    "cells_to_boxes",
    "crop_cells",
    "crop_resize_cells",
    "encompassing_cells",
    "isb_mask_loss",
    "mask_targets",
    "pad_mask_logits",
    "paste_mask_logits",
    "rasterize_masks",
]
