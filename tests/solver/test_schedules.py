import pytest
import torch

from panext_d2.solver import build_lr_scheduler, build_optimizer


def _lrs(cfg, iters):
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt)
    lrs = []
    for _ in range(iters):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    return opt, lrs


def test_exponential_step_decay(cfg):
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupExponentialStepLR"
    cfg.SOLVER.BASE_LR = 4e-5
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.MAX_ITER = 35
    cfg.SOLVER.EXPONENTIAL_DECAY.GAMMA = 0.75
    cfg.SOLVER.EXPONENTIAL_DECAY.DECAY_STEPS = 10
    _, lrs = _lrs(cfg, 35)
    for t in (0, 9, 10, 19, 20, 34):
        assert lrs[t] == pytest.approx(4e-5 * 0.75 ** (t // 10), rel=1e-9), t


def test_cosine_to_floor(cfg):
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.BASE_LR_END = 1e-6
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.MAX_ITER = 100
    _, lrs = _lrs(cfg, 100)
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[50] == pytest.approx((1e-3 + 1e-6) / 2, rel=1e-6)
    assert lrs[99] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + torch.cos(torch.tensor(0.99 * 3.141592653589793)).item()), rel=1e-4)
    assert min(lrs) >= 1e-6


def test_detectron2_schedules_still_available(cfg):
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.MAX_ITER = 20
    cfg.SOLVER.STEPS = (10,)
    _, lrs = _lrs(cfg, 20)
    assert lrs[9] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.01)


def _ranger_cfg(cfg, owner, max_iter=200):
    cfg.SOLVER.OPTIMIZER = "Ranger21"
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.RANGER21.LR_OWNER = owner
    cfg.SOLVER.LR_SCHEDULER_NAME = "Ranger21LR"
    return cfg


def test_ranger21_owns_lr_and_detectron2_stays_constant(cfg):
    _, lrs = _lrs(_ranger_cfg(cfg, "ranger21"), 200)
    assert set(lrs) == {0.01}


@pytest.mark.parametrize("max_iter", [200, 5000])
def test_ranger21_schedule_under_detectron2_equals_ranger21_internal_one(cfg, max_iter):
    """The two ownership modes give the same learning rate at every step."""
    opt, lrs = _lrs(_ranger_cfg(cfg, "detectron2", max_iter), max_iter)
    reference = _ranger_cfg(cfg.clone(), "ranger21", max_iter)
    internal = build_optimizer(reference, torch.nn.Linear(2, 1))
    for it in range(max_iter):
        step = it + 1  # Ranger21 counts steps from 1
        expected = internal.warm_down(internal.warm_up_dampening(0.01, step), step)
        assert lrs[it] == pytest.approx(expected, rel=1e-9, abs=1e-12), it
    assert lrs[1] < lrs[max_iter // 2] and lrs[-1] < lrs[max_iter // 2]
