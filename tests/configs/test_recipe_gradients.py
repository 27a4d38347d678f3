"""Every trainable config, at full size: parameters without pretrained weights are trainable
(only backbone trunk parameters, which ImageNet / COCO checkpoints initialise, may be frozen;
PaNeXt-e's new ``fc_mid`` convs never), and one training step on a synthetic batch that
exercises every branch gives every trainable parameter a gradient."""
import glob
import os

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from panext_d2 import get_panext_cfg

from .test_configs import CONFIG_DIR

pytestmark = pytest.mark.slow  # builds ~60 full-size models

RECIPES = sorted(
    p for p in glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True)
    if not os.path.basename(p).startswith("Base-")
)
INFERENCE_ONLY = {"TwoStageSegmentor"}  # composes two separately trained models
NEW_IN_PRETRAINED_TRUNK = ("fc_mid",)  # PaNeXt-e's extra pointwise convs


def _instances(boxes, classes, size):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    masks = torch.zeros(len(boxes), *size, dtype=torch.bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, int(y0):int(y1), int(x0):int(x1)] = True
    inst.gt_masks = BitMasks(masks)
    return inst


def _image(size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, *size), generator=g).float()


def _isb_batch(model):
    """One 640x640 image with a box of exactly every branch's cell shape (and one that only
    a remainder branch takes), so that every branch gets boxes."""
    cell = model.isb_head.cell_stride
    shapes = [b.shape for b in model.isb_head.routing.branches] + [(1, 4)]
    boxes = [[2, 2, cell * w - 2, cell * h - 2] for h, w in shapes]
    size = (640, 640)
    return [{"image": _image(size), "instances": _instances(boxes, [0] * len(boxes), size)}]


def _panoptic_batch(num_things, num_stuff, size=(256, 256)):
    """Things of several sizes (several pyramid levels) on two stuff regions."""
    boxes = [[8, 8, 40, 40], [60, 20, 200, 180], [140, 150, 250, 250]]
    classes = [0, (1 % num_things), (num_things - 1)]
    sem_seg = torch.zeros(size, dtype=torch.long)
    sem_seg[size[0] // 2:] = num_stuff - 1
    inst = _instances(boxes, classes, size)
    sem_seg[inst.gt_masks.tensor.any(0)] = 255
    return [{"image": _image(size), "instances": inst, "sem_seg": sem_seg, "height": size[0],
             "width": size[1]}]


def _semantic_batch(num_classes, size=(128, 128)):
    batch = []
    for i in range(2):
        sem_seg = torch.zeros(size, dtype=torch.long)
        if i == 0:  # one image with every foreground class, one empty
            for c in range(1, num_classes):
                sem_seg[10 * c:10 * c + 20, 10 * c:10 * c + 30] = c
        batch.append({"image": _image(size, i), "sem_seg": sem_seg, "height": size[0],
                      "width": size[1], "foreground_classes": sorted(set(sem_seg.unique().tolist()) - {0})})
    return batch


def _batch(cfg, model):
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch in ("SSD", "SSDISB"):
        if arch == "SSD":
            return [{"image": _image((640, 640)), "instances": _instances([[40, 40, 300, 500]], [0], (640, 640))}]
        return _isb_batch(model)
    if arch == "PaNeXt":
        return _panoptic_batch(cfg.MODEL.PANEXT.NUM_THING_CLASSES, cfg.MODEL.PANEXT.NUM_STUFF_CLASSES)
    if arch in ("PanopticFPN", "GeneralizedRCNN"):
        num_stuff = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES if arch == "PanopticFPN" else 1
        return _panoptic_batch(cfg.MODEL.ROI_HEADS.NUM_CLASSES, num_stuff)
    if arch == "EncDecSegmentor":
        return _semantic_batch(cfg.MODEL.ENCDEC.NUM_CLASSES)
    if arch == "ImageClassifier":
        return _semantic_batch(cfg.MODEL.ENCDEC.NUM_CLASSES)
    if arch == "SemanticSegmentor":
        return _semantic_batch(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    raise AssertionError(f"no synthetic batch for {arch}")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_new_parameters_train_and_every_trainable_parameter_gets_a_gradient(path):
    cfg = get_panext_cfg(path, ["MODEL.DEVICE", "cpu"])
    if cfg.MODEL.META_ARCHITECTURE in INFERENCE_ONLY:
        pytest.skip("inference-only composition of two trained models")
    torch.manual_seed(0)
    model = build_model(cfg)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert not [n for n in frozen if not n.startswith("backbone.")], "frozen outside the backbone"
    assert not [n for n in frozen if any(k in n for k in NEW_IN_PRETRAINED_TRUNK)], "new layer frozen"

    model.train()
    with EventStorage():
        losses = model(_batch(cfg, model))
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not without, f"{len(without)} trainable parameters without a gradient: {without[:8]}"
