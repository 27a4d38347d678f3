"""Tiny PaNeXt models and in-memory panoptic inputs for the tests of this folder."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from detectron2.structures import BitMasks, Instances
from torch import nn

NUM_THINGS, NUM_STUFF = 3, 2


class TinyBottomUp(Backbone):
    """Four strided convs: res2..res5 at strides 4..32, 8 channels each."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, stride=4), nn.ReLU())
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
            for _ in range(3)
        )
        self._out_features = ["res2", "res3", "res4", "res5"]
        self._out_feature_strides = {f: 4 * 2**i for i, f in enumerate(self._out_features)}
        self._out_feature_channels = {f: width for f in self._out_features}

    def forward(self, x):
        outs = {"res2": self.stem(x)}
        for name, stage in zip(self._out_features[1:], self.stages):
            outs[name] = stage(outs[list(outs)[-1]])
        return outs


if "build_tiny_p2p7_backbone" not in BACKBONE_REGISTRY:

    @BACKBONE_REGISTRY.register()
    def build_tiny_p2p7_backbone(cfg, input_shape: ShapeSpec):
        bottom_up = TinyBottomUp()
        return FPN(
            bottom_up, bottom_up._out_features, 8, top_block=LastLevelP6P7(8, 8, in_feature="p5")
        )


def tiny_panext_cfg():
    from panext_d2 import get_panext_cfg

    cfg = get_panext_cfg()
    cfg.MODEL.META_ARCHITECTURE = "PaNeXt"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = "build_tiny_p2p7_backbone"
    cfg.MODEL.PIXEL_MEAN = [128.0, 128.0, 128.0]
    cfg.MODEL.PIXEL_STD = [64.0, 64.0, 64.0]
    P = cfg.MODEL.PANEXT
    P.NUM_THING_CLASSES, P.NUM_STUFF_CLASSES = NUM_THINGS, NUM_STUFF
    P.KERNEL_DIM = 8
    P.KERNEL_HEAD.NUM_CONVS, P.KERNEL_HEAD.CONVS_DIM = 2, 16
    P.POSITION_HEAD.NUM_CONVS, P.POSITION_HEAD.CONVS_DIM = 2, 16
    P.HR.FPN_DIM = 16
    P.INFERENCE.STUFF_AREA_LIMIT = 16
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (), ()
    return cfg


@pytest.fixture
def tiny_cfg():
    return tiny_panext_cfg()


def synthetic_sample(height=72, width=100, seed=0):
    """An image with two thing rectangles (classes 0 and 2) on two stuff bands, as the
    "panext_panoptic" mapper would give it."""
    g = torch.Generator().manual_seed(seed)
    sem_seg = torch.zeros(height, width, dtype=torch.long)
    sem_seg[height // 2 :] = 1
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, 8:30, 10:40] = True
    masks[1, 36:64, 55:90] = True
    sem_seg[masks.any(0)] = 255
    image = torch.zeros(3, height, width)
    image[:, : height // 2] = torch.tensor([200.0, 60.0, 60.0])[:, None, None]
    image[:, height // 2 :] = torch.tensor([60.0, 200.0, 60.0])[:, None, None]
    image[:, masks[0]] = torch.tensor([30.0, 30.0, 220.0])[:, None]
    image[:, masks[1]] = torch.tensor([240.0, 240.0, 20.0])[:, None]
    image = (image + 10 * torch.randn(image.shape, generator=g)).clamp(0, 255)
    instances = Instances((height, width))
    instances.gt_classes = torch.tensor([0, 2])
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
    return {
        "image": image,
        "instances": instances,
        "sem_seg": sem_seg,
        "height": height,
        "width": width,
    }


@pytest.fixture
def make_sample():
    return synthetic_sample
