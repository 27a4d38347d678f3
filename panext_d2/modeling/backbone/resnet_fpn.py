"""detectron2's ResNet + FPN with levels P2-P7, the backbone of the PanopticFCN-style
baseline (``configs/panopticfcn_R50_400_3x.yaml``).

detectron2's registered ResNet-FPN builders give P2-P6 (``build_resnet_fpn_backbone``, a
max-pooled P6) or P3-P7 (``build_retinanet_resnet_fpn_backbone``); PanopticFCN needs P2-P5 for
its high-resolution branch and P3-P7 for its kernel generator, with P6/P7 from P5
(``LastLevelP6P7fromP5``), as :func:`build_p2p7_fpn` builds.
"""
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import build_resnet_backbone

from .fpn import build_p2p7_fpn

__all__ = ["build_resnet_fpn_p2p7_backbone"]


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_p2p7_backbone(cfg, input_shape):
    """ResNet (``MODEL.RESNETS``) + FPN (``MODEL.FPN``) P2-P7, P6/P7 from P5."""
    return build_p2p7_fpn(cfg, build_resnet_backbone(cfg, input_shape))
