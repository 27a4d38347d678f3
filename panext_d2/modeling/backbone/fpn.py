"""PaNeXt's feature encoder: detectron2's FPN over ConvNeXt with levels P2-P7 (§3.1.1).

P2-P5 are the "base features" (strides 4-32) and feed the high-resolution feature
processor; P3-P7 are the "top features" (the thesis' levels 2-6) and feed the kernel
generator. P6 and P7 come from P5, as in PanopticFCN's ``LastLevelP6P7fromP5``
(``panopticfcn/backbone_utils.py``): detectron2's ``LastLevelP6P7`` with
``in_feature="p5"`` and ``MODEL.FPN.OUT_CHANNELS`` input channels.

detectron2's FPN upsamples by exactly 2, so inputs must be padded to
``size_divisibility`` (32), which detectron2's meta-architectures do through ``ImageList``.
"""
from detectron2.modeling import BACKBONE_REGISTRY, FPN
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from .convnext import ConvNeXtBackbone, PaNeXtEBackbone

__all__ = ["p2p7_fpn", "build_p2p7_fpn", "build_convnext_fpn_backbone", "build_panext_e_fpn_backbone"]


def p2p7_fpn(bottom_up, *, in_features=(), out_channels: int = 256, norm: str = "",
             fuse_type: str = "sum") -> FPN:
    """detectron2's FPN over ``bottom_up`` (``in_features``, empty: every output, res2..res5)
    with P6 / P7 from P5."""
    return FPN(
        bottom_up=bottom_up,
        in_features=list(in_features) or list(bottom_up.output_shape()),
        out_channels=out_channels,
        norm=norm,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=fuse_type,
    )


def build_p2p7_fpn(cfg, bottom_up) -> FPN:
    """:func:`p2p7_fpn` from ``MODEL.FPN.*``."""
    f = cfg.MODEL.FPN
    return p2p7_fpn(bottom_up, in_features=f.IN_FEATURES, out_channels=f.OUT_CHANNELS,
                    norm=f.NORM, fuse_type=f.FUSE_TYPE)


@BACKBONE_REGISTRY.register()
def build_convnext_fpn_backbone(cfg, input_shape):
    """PaNeXt: ConvNeXt (``MODEL.CONVNEXT``) + FPN P2-P7."""
    return build_p2p7_fpn(cfg, ConvNeXtBackbone(cfg, input_shape))


@BACKBONE_REGISTRY.register()
def build_panext_e_fpn_backbone(cfg, input_shape):
    """PaNeXt-e: PaNeXt-e backbone (``MODEL.CONVNEXT.PANEXT_E``) + FPN P2-P7."""
    return build_p2p7_fpn(cfg, PaNeXtEBackbone(cfg, input_shape))
