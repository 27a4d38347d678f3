"""One training step of every family under float16 autocast (on CPU, which supports float16
autocast): losses finite and equal to float32's within float16 precision, gradients finite,
and the heads' gradients pointing the same way. Users train with float16 AMP on V100s, which
have no bfloat16. (Through a from-scratch MobileNet of 13 BatchNorms on one image, CPU
float16 rounding turns the backbone's gradient by up to ~40 degrees; the heads' stay within
a few.)"""
import math
import os

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from panext_d2 import get_panext_cfg
from tests.conftest import REPO_ROOT
from tests.configs.test_recipe_gradients import _batch

pytestmark = pytest.mark.slow  # five training steps of quick-config models

CONFIGS = [
    "quick_schedules/panext_synthetic_cpu.yaml",
    "quick_schedules/panext_e_synthetic_cpu.yaml",
    "quick_schedules/ssd_isb_ms_synthetic_cpu.yaml",
    "quick_schedules/encdec_proposed_synthetic_cpu.yaml",
    "lowcost/cityscapes/mobilenet_fcn8.yaml",
]


def _step(model, batch, dtype):
    model.zero_grad()
    torch.manual_seed(0)
    with EventStorage(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        losses = model(batch)
    sum(losses.values()).backward()
    grads = {n: p.grad.flatten().float() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v) for k, v in losses.items()}, grads


def _cosine(a, b, names):
    return float(torch.nn.functional.cosine_similarity(
        torch.cat([a[n] for n in names]), torch.cat([b[n] for n in names]), dim=0))


@pytest.mark.parametrize("config", CONFIGS)
def test_float16_training_step_matches_float32(config):
    cfg = get_panext_cfg(os.path.join(REPO_ROOT, "configs", config), ["MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    for m in model.modules():  # the same normalisation statistics in both passes
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    batch = _batch(cfg, model)
    losses32, grads32 = _step(model, batch, torch.float32)
    losses16, grads16 = _step(model, batch, torch.float16)
    assert all(math.isfinite(v) for v in losses16.values()), losses16
    assert all(torch.isfinite(g).all() for g in grads16.values())
    for name, value in losses32.items():
        assert losses16[name] == pytest.approx(value, rel=0.05, abs=1e-3), name
    heads = [n for n in grads32 if not n.startswith("backbone.")]
    assert _cosine(grads16, grads32, heads) > 0.98
    assert _cosine(grads16, grads32, list(grads32)) > 0.7
