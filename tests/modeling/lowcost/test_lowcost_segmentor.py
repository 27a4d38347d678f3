"""detectron2's SemanticSegmentor runs every low-cost variant: training losses with gradients
into backbone and head, inference outputs at each image's size."""

import pytest
import torch
from detectron2.modeling import SemanticSegmentor, build_model

from panext_d2.modeling.lowcost import AtrousSegHead, FCNSkipHead

from tests.modeling.lowcost.variants import VARIANTS, make_lowcost_cfg

SIZES = [(100, 132), (90, 120)]  # neither a multiple of 32


def _inputs(num_classes):
    g = torch.Generator().manual_seed(0)
    batch = []
    for h, w in SIZES:
        sem_seg = torch.randint(0, num_classes, (h, w), generator=g)
        sem_seg[:5] = 255
        image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8).float()
        batch.append({"image": image, "sem_seg": sem_seg, "height": h, "width": w})
    return batch


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_forward_backward_and_inference(variant):
    torch.manual_seed(0)
    cfg = make_lowcost_cfg(variant, num_classes=4, SCORE_INIT_STD=0.01)
    model = build_model(cfg)
    assert isinstance(model, SemanticSegmentor)
    head_cls = FCNSkipHead if cfg.MODEL.SEM_SEG_HEAD.NAME == "FCNSkipHead" else AtrousSegHead
    assert isinstance(model.sem_seg_head, head_cls)

    model.train()
    losses = model(_inputs(4))
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    first = next(model.backbone.parameters())  # conv0 / conv1 weight: the gradient got there
    assert first.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in x.items() if k != "sem_seg"} for x in _inputs(4)])
    for out, (h, w) in zip(outputs, SIZES):
        assert out["sem_seg"].shape == (4, h, w)
        # SOFTMAX_BEFORE_UPSAMPLE: bilinear interpolation of probabilities keeps them summing to 1.
        torch.testing.assert_close(out["sem_seg"].sum(0), torch.ones(h, w))


def test_loss_reduction_key():
    cfg_sum = make_lowcost_cfg("MN-Base", num_classes=4)
    cfg_mean = make_lowcost_cfg("MN-Base", num_classes=4, LOSS_REDUCTION="mean")
    inputs = _inputs(4)
    loss_sum = build_model(cfg_sum).train()(inputs)["loss_sem_seg"]
    loss_mean = build_model(cfg_mean).train()(inputs)["loss_sem_seg"]
    # Zero-initialised scores: every labelled pixel costs log 4.
    labelled = sum(int((x["sem_seg"] != 255).sum()) for x in inputs)
    log4 = torch.log(torch.tensor(4.0))
    torch.testing.assert_close(loss_mean, log4)
    torch.testing.assert_close(loss_sum, log4 * labelled / len(inputs))
