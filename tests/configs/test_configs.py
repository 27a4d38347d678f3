"""Every YAML under configs/ loads and builds; the PaNeXt recipes resolve to the thesis'
values (Debucean (2022) §3.3, docs/DESIGN.md §1); both PaNeXt variants train and infer at narrow widths."""

import builtins
import glob
import math
import os

import pytest
import torch
import yaml
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from timm.layers import DropBlock2d

from panext_d2 import get_panext_cfg
from panext_d2.engine import resolve_checkpoint_period
from panext_d2.layers.smelu import SmeLU
from panext_d2.modeling.backbone.convnext import ExtendedMlp

from ..conftest import REPO_ROOT

CONFIG_DIR = os.path.join(REPO_ROOT, "configs")
ALL_CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True))

# name: (MAX_ITER, checkpoint period, extended stages or None for PaNeXt)
PANEXT_RECIPES = {
    "panext_1x": (90000, 4500, None),
    "panext_3x": (270000, 13500, None),
    "panext_e_1x": (90000, 4500, [1, 2, 4]),
    "panext_e_3x": (270000, 13500, [1, 2, 4]),
    "panext_e_s12_1x": (90000, 4500, [1, 2]),
    "panext_e_s12_3x": (270000, 13500, [1, 2]),
}


# Parameters (M, frozen stem and stage 1 included) by extended stages: PaNeXt, PaNeXt-e as
# the text says, size-matched PaNeXt-e (docs/DESIGN.md §1: a faithful PaNeXt has about 41 M).
PANEXT_PARAMS = {None: 40.21, (1, 2, 4): 70.82, (1, 2): 42.50}


def config_path(name):
    return os.path.join(CONFIG_DIR, name + ".yaml")


def load(path, *opts):
    return get_panext_cfg(path, ["MODEL.DEVICE", "cpu", *opts])


def dumped(cfg):
    return yaml.safe_load(cfg.dump())


def test_configs_are_found():
    names = {os.path.relpath(p, CONFIG_DIR) for p in ALL_CONFIGS}
    assert {n + ".yaml" for n in PANEXT_RECIPES} | {"panopticfcn_R50_400_3x.yaml"} <= names


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_every_config_loads_and_builds(path):
    cfg = load(path, "MODEL.DEVICE", "meta")
    dumped(cfg)  # the merged config round-trips through YAML
    # Full size on the meta device: the whole module tree, without allocating or
    # initialising weights (seconds instead of minutes for all configs).
    opened = []
    real_open = builtins.open
    builtins.open = lambda file, *a, **k: opened.append(file) or real_open(file, *a, **k)
    try:
        with torch.device("meta"):
            model = build_model(cfg)
    finally:
        builtins.open = real_open
    assert not opened, f"building the model read {opened}"  # no hidden I/O
    num_params = sum(p.numel() for p in model.parameters())
    assert num_params > 0
    name = os.path.splitext(os.path.basename(path))[0]
    if name in PANEXT_RECIPES:
        check_panext_structure(model, cfg, PANEXT_RECIPES[name][2])
        assert PANEXT_PARAMS[PANEXT_RECIPES[name][2] and tuple(PANEXT_RECIPES[name][2])] == (
            pytest.approx(num_params / 1e6, abs=0.01)
        )
    if name == "panopticfcn_R50_400_3x":
        assert num_params / 1e6 == pytest.approx(36.46, abs=0.01)


def check_panext_structure(model, cfg, extended_stages):
    """SmeLU HR stack of 3 / 5 convs; DropBlock 0.05 / 5 and SmeLU blocks only in PaNeXt-e,
    with the extra pointwise conv in exactly the extended stages."""
    hr_smelus = [m for m in model.hr_processor.convs if isinstance(m, SmeLU)]
    assert len(hr_smelus) == (3 if extended_stages is None else 5)
    assert all(m.beta == 2.0 for m in hr_smelus)
    bottom_up = model.backbone.bottom_up
    drop_blocks = [m for m in bottom_up.modules() if isinstance(m, DropBlock2d)]
    block_smelus = [m for m in bottom_up.modules() if isinstance(m, SmeLU)]
    if extended_stages is None:
        assert not drop_blocks and not block_smelus
        assert not any(isinstance(m, ExtendedMlp) for m in bottom_up.modules())
        return
    assert len(drop_blocks) == 9 + 3  # every block of stages 3 and 4
    assert all(m.drop_prob == 0.05 and m.block_size == 5 for m in drop_blocks)
    assert block_smelus
    for stage in range(1, 5):
        extended = [isinstance(b.mlp, ExtendedMlp) for b in bottom_up.stages[stage - 1].blocks]
        assert all(extended) if stage in extended_stages else not any(extended)


@pytest.mark.parametrize("name", sorted(PANEXT_RECIPES))
def test_panext_recipe_resolves_to_the_thesis_values(name):
    max_iter, period, extended_stages = PANEXT_RECIPES[name]
    cfg = load(config_path(name))
    d = dumped(cfg)
    model, solver, data = d["MODEL"], d["SOLVER"], d["INPUT"]
    assert model["META_ARCHITECTURE"] == "PaNeXt"
    assert model["WEIGHTS"] == ""
    assert model["MASK_ON"] is True
    assert model["PIXEL_MEAN"] == [123.675, 116.28, 103.53]
    assert model["PIXEL_STD"] == [58.395, 57.12, 57.375]
    assert model["PANEXT"]["NUM_THING_CLASSES"] == 80
    assert model["PANEXT"]["NUM_STUFF_CLASSES"] == 53
    assert model["PANEXT"]["POSITION_HEAD"]["DEFORM"] is True
    assert model["CONVNEXT"]["DROP_PATH_RATE"] == 0.2
    hr = model["PANEXT"]["HR"]
    assert hr["ACTIVATION"] == "smelu" and hr["SMELU_BETA"] == 2.0
    if extended_stages is None:
        assert model["BACKBONE"]["NAME"] == "build_convnext_fpn_backbone"
        assert hr["NUM_CONVS"] == 3
        assert model["CONVNEXT"]["DROP_BLOCK"]["PROB"] == 0.0
    else:
        assert model["BACKBONE"]["NAME"] == "build_panext_e_fpn_backbone"
        assert hr["NUM_CONVS"] == 5
        e = model["CONVNEXT"]["PANEXT_E"]
        assert e["EXTENDED_STAGES"] == extended_stages
        assert e["DROP_BLOCK_PROB"] == 0.05 and model["CONVNEXT"]["DROP_BLOCK"]["SIZE"] == 5

    assert d["DATASETS"]["TRAIN"] == ["coco_2017_train_panoptic"]
    assert d["DATASETS"]["TEST"] == ["coco_2017_val_panoptic"]
    assert data["DATASET_MAPPER_NAME"] == "panext_panoptic"
    assert data["FORMAT"] == "RGB"
    assert data["MIN_SIZE_TRAIN"] == [352, 384, 416, 448, 480, 512]
    assert data["MIN_SIZE_TRAIN_SAMPLING"] == "choice"
    assert data["MAX_SIZE_TRAIN"] == 854
    assert data["MIN_SIZE_TEST"] == 400 and data["MAX_SIZE_TEST"] == 666
    assert data["RANDOM_FLIP"] == "horizontal"

    assert solver["IMS_PER_BATCH"] == 16
    assert solver["MAX_ITER"] == max_iter
    assert solver["OPTIMIZER"] == "Ranger21"
    assert solver["BASE_LR"] == 0.01
    assert solver["RANGER21"]["LR_OWNER"] == "ranger21"
    assert math.isinf(solver["RANGER21"]["AGC_CLIPPING_VALUE"])
    clip = solver["CLIP_GRADIENTS"]
    assert clip["ENABLED"] is True and clip["CLIP_TYPE"] == "value" and clip["CLIP_VALUE"] == 35.0
    assert solver["CHECKPOINT_PERIOD_FRACTION"] == 0.05
    assert resolve_checkpoint_period(cfg).SOLVER.CHECKPOINT_PERIOD == period


def test_panopticfcn_baseline_recipe():
    cfg = load(config_path("panopticfcn_R50_400_3x"))
    d = dumped(cfg)
    assert d["MODEL"]["BACKBONE"]["NAME"] == "build_resnet_fpn_p2p7_backbone"
    assert d["MODEL"]["RESNETS"]["DEPTH"] == 50
    assert d["MODEL"]["PANEXT"]["HR"]["ACTIVATION"] == "relu"
    assert d["MODEL"]["PANEXT"]["HR"]["NUM_CONVS"] == 3
    assert (d["INPUT"]["MIN_SIZE_TEST"], d["INPUT"]["MAX_SIZE_TEST"]) == (400, 666)
    assert d["INPUT"]["MAX_SIZE_TRAIN"] == 854
    solver = d["SOLVER"]
    assert (solver["OPTIMIZER"], solver["BASE_LR"], solver["MAX_ITER"]) == ("SGD", 0.01, 270000)
    assert solver["IMS_PER_BATCH"] == 16 and solver["CLIP_GRADIENTS"]["CLIP_VALUE"] == 35.0
    assert resolve_checkpoint_period(cfg).SOLVER.CHECKPOINT_PERIOD == 13500
    from detectron2.modeling import build_backbone

    backbone = build_backbone(cfg)
    assert list(backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6", "p7"]
    assert [s.stride for s in backbone.output_shape().values()] == [4, 8, 16, 32, 64, 128]
    out = backbone(torch.zeros(1, 3, 64, 64))
    assert out["p7"].shape[-2:] == (1, 1)


NARROW = [
    "MODEL.CONVNEXT.DEPTHS", "[1, 1, 2, 1]",
    "MODEL.CONVNEXT.DIMS", "[8, 16, 32, 64]",
    "MODEL.FPN.OUT_CHANNELS", "16",
    "MODEL.PANEXT.KERNEL_DIM", "8",
    "MODEL.PANEXT.KERNEL_HEAD.CONVS_DIM", "16",
    "MODEL.PANEXT.POSITION_HEAD.CONVS_DIM", "16",
    "MODEL.PANEXT.HR.FPN_DIM", "16",
    "MODEL.PANEXT.INFERENCE.STUFF_AREA_LIMIT", "16",
    "MODEL.BACKBONE.FREEZE_AT", "0",
]


def training_sample(height=96, width=128):
    """One image with two things (thing indices 3, 17) and two stuff regions (stuff 0, 40)."""
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, 10:50, 10:60] = True
    masks[1, 40:90, 70:120] = True
    instances = Instances((height, width))
    instances.gt_classes = torch.tensor([3, 17])
    instances.gt_masks = BitMasks(masks)
    instances.gt_boxes = BitMasks(masks).get_bounding_boxes()
    sem_seg = torch.full((height, width), 255, dtype=torch.long)
    sem_seg[:, :] = 0
    sem_seg[60:, :40] = 40
    sem_seg[masks.any(0)] = 255
    return {"image": image, "instances": instances, "sem_seg": sem_seg}


@pytest.mark.parametrize("name", ["panext_3x", "panext_e_3x"])
def test_narrow_variant_trains_and_infers_on_cpu(name):
    torch.manual_seed(0)
    model = build_model(load(config_path(name), *NARROW))
    model.train()
    losses = model([training_sample()])
    assert set(losses) == {"loss_pos_th", "loss_pos_st", "loss_seg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)
    assert all(torch.isfinite(p.grad).all() for p in trainable)
    model.eval()
    with torch.no_grad():
        out = model([{"image": training_sample()["image"], "height": 48, "width": 64}])[0]
    panoptic, segments = out["panoptic_seg"]
    assert panoptic.shape == (48, 64)
    assert "sem_seg" not in out  # not computed for datasets without sem_seg_root
    assert out["instances"].image_size == (48, 64)
