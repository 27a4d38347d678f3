import math

import pytest
import torch
from pytorch_optimizer import Ranger21
from pytorch_optimizer.optimizer.agc import agc

from panext_d2.solver import OPTIMIZERS, build_optimizer


def _quadratic_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


def _train(optimizer, model, steps=200):
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.3
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_reduces_a_quadratic_loss(cfg, name):
    cfg.SOLVER.OPTIMIZER = name
    cfg.SOLVER.BASE_LR = 0.05
    cfg.SOLVER.MAX_ITER = 200
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.RANGER21.WARMUP_ITERS = 0
    model = _quadratic_model()
    losses = _train(build_optimizer(cfg, model), model)
    assert losses[-1] < 0.5 * losses[0], (name, losses[0], losses[-1])


def test_unknown_optimizer_names_the_key(cfg):
    cfg.SOLVER.OPTIMIZER = "Adagrad"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER='Adagrad'"):
        build_optimizer(cfg, _quadratic_model())


@pytest.mark.parametrize("tf_style", [True, False])
def test_rmsprop_first_step_matches_hand_computation(cfg, tf_style):
    cfg.SOLVER.OPTIMIZER = "RMSProp"
    cfg.SOLVER.RMSPROP.TF_STYLE = tf_style
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.EPS = 1.0  # TF OD API's value makes the two styles clearly different
    param = torch.nn.Parameter(torch.tensor([1.0]))
    model = torch.nn.Module()
    model.p = param
    opt = build_optimizer(cfg, model)
    param.grad = torch.tensor([2.0])
    opt.step()
    alpha, g, lr, eps = 0.9, 2.0, 0.1, 1.0
    if tf_style:  # mean square initialised to 1, epsilon inside the root
        expected = 1.0 - lr * g / math.sqrt(alpha * 1.0 + (1 - alpha) * g * g + eps)
    else:  # mean square initialised to 0, epsilon outside the root
        expected = 1.0 - lr * g / (math.sqrt((1 - alpha) * g * g) + eps)
    assert param.item() == pytest.approx(expected, rel=1e-6)


def test_standard_gradient_clipping_wraps_any_optimizer(cfg):
    cfg.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = torch.nn.Module()
    model.p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer(cfg, model)
    model.p.grad = torch.tensor([3.0, -0.2, -7.0])
    opt.step()
    assert torch.allclose(model.p.detach(), torch.tensor([-0.5, 0.2, 0.5]))


def test_ranger21_recipe_neutralises_agc_and_uses_standard_clipping(cfg):
    cfg.SOLVER.OPTIMIZER = "Ranger21"
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 35.0
    opt = build_optimizer(cfg, _quadratic_model())
    assert isinstance(opt, Ranger21) and type(opt) is not Ranger21  # d2's clipping subclass
    assert math.isinf(opt.agc_clipping_value)
    # With an infinite value Ranger21's adaptive clipping returns the gradient untouched,
    # while the library default (1e-2) would shrink it.
    p, g = torch.ones(8, 8), torch.full((8, 8), 100.0)
    assert torch.equal(agc(p, g, opt.agc_eps, opt.agc_clipping_value), g)
    assert agc(p, g, 1e-3, 1e-2).abs().max() < 1.0


@pytest.mark.parametrize("owner, disabled", [("ranger21", False), ("detectron2", True)])
def test_ranger21_lr_owner(cfg, owner, disabled):
    cfg.SOLVER.OPTIMIZER = "Ranger21"
    cfg.SOLVER.MAX_ITER = 50
    cfg.SOLVER.RANGER21.LR_OWNER = owner
    opt = build_optimizer(cfg, _quadratic_model())
    assert opt.disable_lr_scheduler is disabled


def test_ranger21_lr_owner_typo_is_reported(cfg):
    cfg.SOLVER.OPTIMIZER = "Ranger21"
    cfg.SOLVER.RANGER21.LR_OWNER = "d2"
    with pytest.raises(ValueError, match="SOLVER.RANGER21.LR_OWNER"):
        build_optimizer(cfg, _quadratic_model())


@pytest.mark.parametrize("name,warns", [("AdamW", True), ("RAdam", True), ("RMSProp", False)])
def test_large_epsilon_with_adam_is_reported(cfg, caplog, name, warns):
    """TF RMSProp's epsilon 1.0 inherited by an Adam config makes Adam plain SGD."""
    cfg.SOLVER.OPTIMIZER = name
    cfg.SOLVER.EPS = 1.0
    with caplog.at_level("WARNING", logger="panext_d2.solver.optimizers"):
        build_optimizer(cfg, _quadratic_model())
    assert ("SOLVER.EPS=1.0" in caplog.text) == warns
