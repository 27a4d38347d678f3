"""The PaNeXt meta-architecture end to end on a tiny P2-P7 backbone (CPU)."""

import inspect
import math

import pytest
import torch
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7

from panext_d2 import get_panext_cfg
from panext_d2.modeling.panext import PaNeXt
from panext_d2.modeling.panext.heads import KernelHead, PositionHead
from panext_d2.modeling.panext.hr_processor import HRProcessor

from .conftest import NUM_STUFF, NUM_THINGS, TinyBottomUp


def test_registered_and_configurable(tiny_cfg):
    assert META_ARCH_REGISTRY.get("PaNeXt") is PaNeXt
    model = build_model(tiny_cfg)
    assert isinstance(model, PaNeXt)
    assert model.thing_ids.tolist() == [0, 1, 2] and model.stuff_ids.tolist() == [3, 4]
    assert model.level_strides == [8, 16, 32, 64, 128] and model.hr_stride == 4


def test_class_ids_come_from_the_dataset_metadata(tiny_cfg):
    tiny_cfg.DATASETS.TRAIN = ("synthetic_panoptic_train",)
    tiny_cfg.MODEL.PANEXT.NUM_STUFF_CLASSES = 3
    model = build_model(tiny_cfg)
    assert model.thing_ids.tolist() == [0, 1, 2] and model.stuff_ids.tolist() == [3, 4, 5]
    tiny_cfg.MODEL.PANEXT.NUM_STUFF_CLASSES = 4
    with pytest.raises(ValueError):
        build_model(tiny_cfg)


def test_forward_backward_reaches_every_parameter(tiny_cfg, make_sample):
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    batch = [make_sample(72, 100, 0), make_sample(60, 90, 1)]
    losses = model(batch)
    assert set(losses) == {"loss_pos_th", "loss_pos_st", "loss_seg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_thing_normalisation_modes(tiny_cfg, make_sample):
    batch = [make_sample(72, 100, 0), make_sample(60, 90, 1)]
    values = {}
    for norm in ("num_thing_classes", "num_instances"):
        tiny_cfg.MODEL.PANEXT.LOSS.THING_NORM = norm
        torch.manual_seed(0)
        values[norm] = build_model(tiny_cfg).train()(batch)["loss_pos_th"].item()
    # thesis: / (3 classes x 2 images); PanopticFCN: / 4 instances
    assert values["num_thing_classes"] * 6 == pytest.approx(values["num_instances"] * 4, rel=1e-5)


def test_batch_without_objects(tiny_cfg, make_sample):
    sample = make_sample(64, 64, 0)
    sample["instances"] = sample["instances"][:0]
    sample["sem_seg"][:] = 255
    losses = build_model(tiny_cfg).train()([sample])
    assert losses["loss_seg"].item() == 0 and torch.isfinite(losses["loss_pos_th"])
    sum(losses.values()).backward()


def test_inference_outputs_are_valid_detectron2_outputs(tiny_cfg, make_sample):
    P = tiny_cfg.MODEL.PANEXT.INFERENCE
    P.THING_SCORE_THRESH, P.STUFF_SCORE_THRESH, P.COMBINE_SCORE_THRESH, P.MASK_THRESH = (
        0.0,
        0.0,
        0.0,
        0.3,
    )
    torch.manual_seed(0)
    model = build_model(tiny_cfg).eval()
    sample = make_sample(72, 100, 0)
    sample.update(height=144, width=200)  # outputs are resized to the original size
    with torch.no_grad():
        out = model([sample, make_sample(60, 90, 1)])
    assert len(out) == 2
    pan, segments = out[0]["panoptic_seg"]
    assert pan.shape == (144, 200) and pan.dtype == torch.int32
    ids = [s["id"] for s in segments]
    assert len(ids) == len(set(ids)) and set(pan.unique().tolist()) - {0} == set(ids)
    for s in segments:
        assert s["category_id"] in (model.thing_ids if s["isthing"] else model.stuff_ids).tolist()
    assert out[0]["sem_seg"].shape == (5, 144, 200)
    inst = out[0]["instances"]
    assert inst.image_size == (144, 200) and inst.pred_masks.shape[1:] == (144, 200)
    assert 0 < len(inst) <= 100 and inst.pred_masks.dtype == torch.bool
    assert set(inst.pred_classes.tolist()) <= {0, 1, 2}
    assert (
        inst.scores.max() <= 1
        and (inst.pred_boxes.tensor[:, 2:] >= inst.pred_boxes.tensor[:, :2]).all()
    )


def test_inference_keys_are_keyword_arguments_with_the_config_defaults(tiny_cfg):
    defaults = get_panext_cfg().MODEL.PANEXT.INFERENCE
    params = inspect.signature(PaNeXt.__init__).parameters
    for key, value in defaults.items():
        assert params[key.lower()].default == value, key
    # from_config passes every MODEL.PANEXT.INFERENCE key; the model stores each one
    I = tiny_cfg.MODEL.PANEXT.INFERENCE
    I.CENTER_NMS_KERNEL, I.TOP_K_THINGS, I.STUFF_AREA_LIMIT = 5, 7, 9
    I.THING_SCORE_THRESH, I.STUFF_SCORE_THRESH, I.SIMILARITY_THRESH = 0.31, 0.32, 0.33
    I.MASK_THRESH, I.COMBINE_SCORE_THRESH, I.OVERLAP_THRESH = 0.34, 0.35, 0.36
    I.MASK_RESCORE, I.PANOPTIC_ON, I.INSTANCES_ON, I.SEM_SEG_ON = False, False, False, False
    model = build_model(tiny_cfg)
    for key, value in I.items():
        assert getattr(model, key.lower()) == value, key
    assert not hasattr(model, "inference_cfg")


def test_built_without_config_runs_inference(make_sample):
    """Keyword construction, no cfg: the inference options take their defaults."""
    torch.manual_seed(0)
    bottom_up = TinyBottomUp()
    backbone = FPN(
        bottom_up, bottom_up._out_features, 8, top_block=LastLevelP6P7(8, 8, in_feature="p5")
    )
    shapes = backbone.output_shape()
    kernel_in, hr_in = ["p3", "p4", "p5", "p6", "p7"], ["p2", "p3", "p4", "p5"]
    model = PaNeXt(
        backbone=backbone,
        kernel_head=KernelHead(
            in_channels=8, kernel_dim=8, num_convs=2, convs_dim=16, coord=True, norm="GN"
        ),
        position_head=PositionHead(
            in_channels=8,
            num_thing_classes=NUM_THINGS,
            num_stuff_classes=NUM_STUFF,
            num_convs=2,
            convs_dim=16,
            deform=True,
            norm="GN",
            prior_prob=0.1,
        ),
        hr_processor=HRProcessor(
            input_shape={f: shapes[f] for f in hr_in},
            fpn_dim=16,
            out_channels=8,
            num_convs=3,
            activation="smelu",
            smelu_beta=2.0,
            coord=True,
            norm="",
        ),
        kernel_in_features=kernel_in,
        hr_in_features=hr_in,
        thing_ids=list(range(NUM_THINGS)),
        stuff_ids=list(range(NUM_THINGS, NUM_THINGS + NUM_STUFF)),
        pixel_mean=[128.0, 128.0, 128.0],
        pixel_std=[64.0, 64.0, 64.0],
        scale_ranges=((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048)),
        gaussian_min_overlap=0.7,
        thing_pos_num=3,
        ignore_value=255,
        position_weight=1.0,
        segment_weight=3.0,
        focal_alpha=0.25,
        focal_gamma=2.0,
        thing_norm="num_thing_classes",
        dice_form="thesis",
    ).eval()
    with torch.no_grad():
        out = model([make_sample(72, 100, 0)])
    assert set(out[0]) == {"panoptic_seg", "sem_seg", "instances"}
    assert out[0]["panoptic_seg"][0].shape == (72, 100)
    assert out[0]["sem_seg"].shape == (NUM_THINGS + NUM_STUFF, 72, 100)
    assert len(out[0]["instances"]) <= model.top_k_things


@pytest.mark.parametrize(
    "dice_form,lr,seg_ratio", [("thesis", 5e-4, 0.5), ("panopticfcn", 1e-3, 0.1)]
)
@pytest.mark.slow
def test_overfits_two_tiny_images(tiny_cfg, make_sample, dice_form, lr, seg_ratio):
    tiny_cfg.MODEL.PANEXT.LOSS.DICE_FORM = dice_form
    # From scratch, as the quick configs: GroupNorm in the HR stack (the recipes, fine-tuning
    # a pretrained backbone, have none, as PanopticFCN; without it this overfit is ~2x slower).
    tiny_cfg.MODEL.PANEXT.HR.NORM = "GN"
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    batch = [make_sample(64, 64, 0), make_sample(64, 64, 1)]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(100):
        losses = model(batch)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert all(math.isfinite(v) for v in last.values())
    assert sum(last.values()) < 0.6 * sum(first.values())
    assert last["loss_seg"] < seg_ratio * first["loss_seg"]
    assert last["loss_pos_th"] < 0.1 * first["loss_pos_th"]

    model.eval()
    with torch.no_grad():
        pan, segments = model([batch[0]])[0]["panoptic_seg"]
    assert {s["category_id"] for s in segments if s["isthing"]} == {0, 2}
