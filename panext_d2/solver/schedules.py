"""LR schedules beyond detectron2's: exponential step decay (Kolhatkar (2020)) and Ranger21's own
warm-up / warm-down expressed as a detectron2 schedule. Every schedule is a multiplier of
SOLVER.BASE_LR driven by detectron2's ``LRMultiplier``, so it is checkpointed and resumed
with the trainer."""
import math

from detectron2.solver import LRMultiplier, WarmupParamScheduler
from detectron2.solver import build_lr_scheduler as build_d2_lr_scheduler
from fvcore.common.param_scheduler import ParamScheduler


class _IterationScheduler(ParamScheduler):
    """A ParamScheduler written in iterations (subclasses define ``at_iteration(t)``) rather
    than in fractions of the run."""

    def __init__(self, num_updates: int):
        self.num_updates = num_updates

    def __call__(self, where: float) -> float:
        # LRMultiplier passes iteration / num_updates; round() recovers the integer exactly.
        return self.at_iteration(round(where * self.num_updates))


class _ConstantScheduler(ParamScheduler):
    """Multiplier 1 everywhere, the end of the run included (fvcore's constant scheduler
    rejects ``where == 1``, which LRMultiplier reaches after the last iteration)."""

    def __call__(self, where: float) -> float:
        return 1.0


class ExponentialStepParamScheduler(_IterationScheduler):
    """``gamma ** floor(t / decay_steps)`` (TF's staircase exponential_decay)."""

    def __init__(self, gamma: float, decay_steps: int, num_updates: int):
        super().__init__(num_updates)
        if decay_steps <= 0:
            raise ValueError(f"SOLVER.EXPONENTIAL_DECAY.DECAY_STEPS must be > 0, got {decay_steps}")
        self.gamma, self.decay_steps = gamma, decay_steps

    def at_iteration(self, t: int) -> float:
        return self.gamma ** (t // self.decay_steps)


class Ranger21ParamScheduler(_IterationScheduler):
    """Ranger21's internal schedule (linear warm-up, then linear warm-down to ``min_lr``) as a
    multiplier of the base LR, for iteration ``t`` = Ranger21's step ``t + 1``. It mirrors
    ``pytorch_optimizer.Ranger21.warm_up_dampening`` / ``warm_down`` (tested against them), but
    scales every parameter group by its own LR, where Ranger21's warm-down resets all groups
    to one LR."""

    def __init__(self, num_updates, base_lr, beta2, warmup_iters=-1, warmdown_iters=-1, min_lr=3e-5):
        super().__init__(num_updates)
        if warmup_iters < 0:
            warmup_iters = math.ceil(2.0 / (1.0 - beta2))
            if warmup_iters / num_updates > 0.45:
                warmup_iters = int(0.22 * num_updates)
        if warmdown_iters < 0:
            warmdown_iters = num_updates - int(0.72 * num_updates)
        self.warmup, self.warmdown = warmup_iters, warmdown_iters
        self.start_warmdown = num_updates - warmdown_iters
        self.min_factor = min_lr / base_lr

    def at_iteration(self, t: int) -> float:
        step = t + 1
        if step >= self.start_warmdown:
            progress = min(max(step + 1 - self.start_warmdown, 1) / (self.warmdown + 1), 1.0)
            return max(1.0 - (1.0 - self.min_factor) * progress, self.min_factor)
        if step <= self.warmup:
            return min(1.0, step / self.warmup) if self.warmup > 0 else 1.0
        return 1.0


def _with_warmup(cfg, scheduler):
    return WarmupParamScheduler(
        scheduler,
        cfg.SOLVER.WARMUP_FACTOR,
        min(cfg.SOLVER.WARMUP_ITERS / cfg.SOLVER.MAX_ITER, 1.0),
        cfg.SOLVER.WARMUP_METHOD,
        cfg.SOLVER.RESCALE_INTERVAL,
    )


def build_lr_scheduler(cfg, optimizer):
    """detectron2's schedules plus ours; a constant one while Ranger21 owns the LR."""
    max_iter = cfg.SOLVER.MAX_ITER  # one iteration = one optimizer update (ACCUMULATE_STEPS)
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    if cfg.SOLVER.OPTIMIZER == "Ranger21" and cfg.SOLVER.RANGER21.LR_OWNER == "ranger21":
        multiplier = _ConstantScheduler()
    elif name == "WarmupExponentialStepLR":
        decay = cfg.SOLVER.EXPONENTIAL_DECAY
        multiplier = _with_warmup(
            cfg, ExponentialStepParamScheduler(decay.GAMMA, decay.DECAY_STEPS, max_iter)
        )
    elif name == "Ranger21LR":
        r21 = cfg.SOLVER.RANGER21
        multiplier = Ranger21ParamScheduler(
            max_iter,
            cfg.SOLVER.BASE_LR,
            cfg.SOLVER.BETAS[1],
            r21.WARMUP_ITERS,
            r21.WARMDOWN_ITERS,
            r21.WARMDOWN_MIN_LR,
        )
    else:
        return build_d2_lr_scheduler(cfg, optimizer)
    return LRMultiplier(optimizer, multiplier=multiplier, max_iter=max_iter)
