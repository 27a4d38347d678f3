"""High-resolution feature processor (Debucean (2022) §3.1.3): a semantic-FPN merge of the base
features down to stride 4 (Kirillov et al., Panoptic FPN), then a conv stack with SmeLU."""

import math
from typing import Dict

import fvcore.nn.weight_init as weight_init
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import nn
from torch.nn import functional as F

from ...layers.activation import activation_factory
from ...layers.norm import norm_or_identity
from .heads import ConvStack, coord_features


class SemanticFPNMerge(nn.Module):
    """Per level: (conv3x3-norm-ReLU, x2 bilinear upsampling) repeated until stride
    ``common_stride``; the levels are then summed."""

    def __init__(
        self, input_shape: Dict[str, ShapeSpec], channels: int, norm: str, common_stride: int = 4
    ):
        super().__init__()
        self.in_features = list(input_shape)
        self.scale_heads = nn.ModuleList()
        for name, shape in input_shape.items():
            steps = max(1, int(math.log2(shape.stride) - math.log2(common_stride)))
            layers = []
            for i in range(steps):
                conv = nn.Conv2d(
                    shape.channels if i == 0 else channels, channels, 3, padding=1, bias=not norm
                )
                weight_init.c2_msra_fill(conv)
                layers += [conv, norm_or_identity(norm, channels), nn.ReLU()]
                if shape.stride > common_stride:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        out = None
        for name, head in zip(self.in_features, self.scale_heads):
            x = head(features[name])
            if out is not None and x.shape[-2:] != out.shape[-2:]:
                x = F.interpolate(x, size=out.shape[-2:], mode="bilinear", align_corners=False)
            out = x if out is None else out + x
        return out


class HRProcessor(nn.Module):
    """Semantic-FPN merge (convs normalised by ``merge_norm``) -> [coordinates] ->
    ``num_convs`` x (conv3x3-[norm]-activation) with ``out_channels`` (= kernel dim) channels
    at stride 4."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: Dict[str, ShapeSpec],
        fpn_dim: int,
        out_channels: int,
        num_convs: int,
        activation: str,
        smelu_beta: float,
        coord: bool,
        norm: str,
        merge_norm: str = "GN",
    ):
        """
        Args:
            input_shape: {feature name: ShapeSpec} of the base features merged to stride 4,
                finest first (by config the backbone's ``MODEL.PANEXT.HR_IN_FEATURES``,
                P2-P5).
            fpn_dim: channels of each level's merge convs, hence of the merged map;
                ``MODEL.PANEXT.HR.FPN_DIM``.
            out_channels: channels of the stack's convs and of the output HR map, equal to
                the dynamic kernels' dimension; ``MODEL.PANEXT.KERNEL_DIM``.
            num_convs: number of 3x3 convs of the stack after the merge (PaNeXt 3, PaNeXt-e
                5); ``MODEL.PANEXT.HR.NUM_CONVS``.
            activation: activation after each stack conv, "smelu" (thesis) or another name of
                :func:`activation_factory` ("relu": the PanopticFCN baseline);
                ``MODEL.PANEXT.HR.ACTIVATION``.
            smelu_beta: beta of the SmeLU (used with ``activation`` "smelu" only);
                ``MODEL.PANEXT.HR.SMELU_BETA``.
            coord: whether two normalised (x, y) coordinate channels are appended to the
                merged map before the stack; ``MODEL.PANEXT.HR.COORD``.
            norm: norm of the stack convs ("" for none, then the convs have a bias and
                PyTorch's default init); ``MODEL.PANEXT.HR.NORM``.
            merge_norm: norm of the merge convs ("GN" as PanopticFCN, "" for none);
                ``MODEL.PANEXT.HR.MERGE_NORM``.
        """
        super().__init__()
        self.merge = SemanticFPNMerge(input_shape, fpn_dim, merge_norm)
        self.coord = coord
        self.convs = ConvStack(
            fpn_dim + 2 * coord,
            out_channels,
            num_convs,
            norm,
            activation=activation_factory(activation, smelu_beta=smelu_beta),
        )
        self.stride = min(s.stride for s in input_shape.values())

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        P = cfg.MODEL.PANEXT
        return {
            "input_shape": {k: input_shape[k] for k in P.HR_IN_FEATURES},
            "fpn_dim": P.HR.FPN_DIM,
            "out_channels": P.KERNEL_DIM,
            "num_convs": P.HR.NUM_CONVS,
            "activation": P.HR.ACTIVATION,
            "smelu_beta": P.HR.SMELU_BETA,
            "coord": P.HR.COORD,
            "norm": P.HR.NORM,
            "merge_norm": P.HR.MERGE_NORM,
        }

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.merge(features)
        return self.convs(coord_features(x) if self.coord else x)
