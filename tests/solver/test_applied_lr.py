"""The logged ``lr`` is the LR the optimizer applied, Ranger21's own warm-up / warm-down
included (detectron2's hook reads the group's ``lr``, Ranger21's base LR)."""
import copy

import pytest
import torch

from panext_d2 import Trainer
from panext_d2.solver import applied_lr, build_optimizer

BASE_LR, MAX_ITER, WARMUP = 0.01, 12, 4
WARMDOWN_START = 8  # Ranger21's default: step 12 - (12 - int(0.72 * 12)); steps count from 1


def _ranger_cfg(cfg, owner="ranger21"):
    cfg.SOLVER.OPTIMIZER = "Ranger21"
    cfg.SOLVER.BASE_LR = BASE_LR
    cfg.SOLVER.MAX_ITER = MAX_ITER
    cfg.SOLVER.RANGER21.WARMUP_ITERS = WARMUP
    cfg.SOLVER.RANGER21.LR_OWNER = owner
    cfg.SOLVER.LR_SCHEDULER_NAME = "Ranger21LR"  # used by the "detectron2" owner only
    return cfg


class _Regression(torch.nn.Module):
    """A linear regression whose forward takes a (x, y) batch and returns its loss dict."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), y)}


def _batches():
    generator = torch.Generator().manual_seed(1)
    while True:
        x = torch.randn(8, 4, generator=generator)
        yield x, x.sum(dim=1, keepdim=True)


def test_applied_lr_replays_ranger21_updates(cfg):
    """Ranger21 without its schedule, given the reported LR at every step, makes exactly the
    updates of Ranger21 with its schedule; the reported LR is below the base LR in warm-up."""
    scheduled_model = _Regression()
    replay_model = copy.deepcopy(scheduled_model)
    scheduled = build_optimizer(_ranger_cfg(cfg), scheduled_model)
    replay = build_optimizer(_ranger_cfg(cfg.clone(), "detectron2"), replay_model)
    lrs = []
    for _, batch in zip(range(MAX_ITER), _batches()):
        for model, opt in ((scheduled_model, scheduled), (replay_model, replay)):
            opt.zero_grad()
            model(batch)["loss"].backward()
        scheduled.step()
        current_lr = scheduled.current_lr
        lrs.append(applied_lr(scheduled))
        assert scheduled.current_lr == current_lr  # the optimizer's state is left alone
        for i, group in enumerate(replay.param_groups):
            group["lr"] = applied_lr(scheduled, i)
        replay.step()
        for p, q in zip(scheduled_model.parameters(), replay_model.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert scheduled.param_groups[0]["lr"] == BASE_LR  # what detectron2 alone would log
    assert lrs[:WARMUP] == pytest.approx([BASE_LR * s / WARMUP for s in range(1, WARMUP + 1)])
    assert lrs[WARMUP:WARMDOWN_START - 1] == [BASE_LR] * (WARMDOWN_START - 1 - WARMUP)
    assert all(lr < BASE_LR for lr in lrs[WARMDOWN_START - 1:])
    assert applied_lr(replay) == replay.param_groups[0]["lr"]  # not Ranger21's schedule


class _TinyTrainer(Trainer):
    @classmethod
    def build_model(cls, cfg):
        return _Regression()

    @classmethod
    def build_train_loader(cls, cfg):
        return _batches()

    def build_writers(self):
        return []


def _logged_lrs(cfg, output_dir):
    output_dir.mkdir()
    cfg.OUTPUT_DIR = str(output_dir)
    trainer = _TinyTrainer(cfg)
    trainer.train()
    assert "LRScheduler" in trainer.state_dict()["hooks"]  # detectron2's checkpoint key
    return [lr for lr, _ in trainer.storage.history("lr").values()]


def test_trainer_logs_ranger21_applied_lr(cfg, tmp_path):
    """The trainer logs, while Ranger21 owns the LR, the LRs that detectron2 logs while it runs
    the same schedule itself ("Ranger21LR"), which start below the base LR."""
    internal = _logged_lrs(_ranger_cfg(cfg.clone()), tmp_path / "ranger21")
    external = _logged_lrs(_ranger_cfg(cfg.clone(), "detectron2"), tmp_path / "detectron2")
    assert len(internal) == MAX_ITER
    assert internal == pytest.approx(external, rel=1e-12)
    assert internal[0] == pytest.approx(BASE_LR / WARMUP) and max(internal) == BASE_LR
