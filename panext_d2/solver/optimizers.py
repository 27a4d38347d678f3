"""Optimizers selected by ``cfg.SOLVER.OPTIMIZER``: SGD, AdamW, RAdam, RMSProp (PyTorch or
TF-style) and Ranger21 (pytorch-optimizer's; the ``ranger21`` 0.1.0 release applies its stable
weight decay and norm loss to the wrong tensor, docs/DESIGN.md §1)."""
import logging
from typing import Callable, Dict, Optional

import torch
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from pytorch_optimizer import Ranger21
from timm.optim import RMSpropTF

RANGER21_LR_OWNERS = ("ranger21", "detectron2")
# Adam-family epsilons sit next to sqrt(second moment), which is tiny for most gradients: an
# epsilon this large (TF RMSProp's 1.0, e.g. inherited from an SSD base config) turns the
# update into plain SGD at BASE_LR, which barely trains.
_ADAM_FAMILY = ("AdamW", "RAdam", "Ranger21")
_LARGE_ADAM_EPS = 1e-3


def _sgd(cfg, params):
    return torch.optim.SGD, dict(momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)


def _adamw(cfg, params):
    return torch.optim.AdamW, dict(betas=tuple(cfg.SOLVER.BETAS), eps=cfg.SOLVER.EPS)


def _radam(cfg, params):
    return torch.optim.RAdam, dict(betas=tuple(cfg.SOLVER.BETAS), eps=cfg.SOLVER.EPS)


def _rmsprop(cfg, params):
    kwargs = dict(alpha=cfg.SOLVER.RMSPROP.ALPHA, eps=cfg.SOLVER.EPS, momentum=cfg.SOLVER.MOMENTUM)
    return (RMSpropTF if cfg.SOLVER.RMSPROP.TF_STYLE else torch.optim.RMSprop), kwargs


def _ranger21(cfg, params):
    r21 = cfg.SOLVER.RANGER21
    if r21.LR_OWNER not in RANGER21_LR_OWNERS:
        raise ValueError(
            f"SOLVER.RANGER21.LR_OWNER={r21.LR_OWNER!r}; expected one of {RANGER21_LR_OWNERS}"
        )
    kwargs = dict(
        num_iterations=cfg.SOLVER.MAX_ITER,  # optimizer updates
        betas=tuple(cfg.SOLVER.BETAS),
        eps=cfg.SOLVER.EPS,
        beta0=r21.BETA0,
        disable_lr_scheduler=r21.LR_OWNER == "detectron2",
        num_warm_up_iterations=None if r21.WARMUP_ITERS < 0 else r21.WARMUP_ITERS,
        num_warm_down_iterations=None if r21.WARMDOWN_ITERS < 0 else r21.WARMDOWN_ITERS,
        warm_down_min_lr=r21.WARMDOWN_MIN_LR,
        agc_clipping_value=r21.AGC_CLIPPING_VALUE,
        lookahead_merge_time=r21.LOOKAHEAD_MERGE_TIME,
        lookahead_blending_alpha=r21.LOOKAHEAD_BLENDING_ALPHA,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        norm_loss_factor=r21.NORM_LOSS_FACTOR,
    )
    return Ranger21, kwargs


def applied_lr(optimizer: torch.optim.Optimizer, group_index: int = 0) -> float:
    """The LR applied to param group ``group_index`` by the optimizer's last step (by its first
    one, before any step): the group's ``lr``, or, while Ranger21 owns the LR, that LR through
    Ranger21's own ``warm_up_dampening`` and ``warm_down``."""
    group = optimizer.param_groups[group_index]
    if not isinstance(optimizer, Ranger21) or optimizer.disable_lr_scheduler:
        return group["lr"]
    step = max(group.get("step", 0), 1)  # Ranger21 counts from 1 and sets "step" at its first
    # Both methods also store their result in ``current_lr`` (checkpointed); keep it as is.
    current_lr = optimizer.current_lr
    lr = optimizer.warm_down(optimizer.warm_up_dampening(group["lr"], step), step)
    optimizer.current_lr = current_lr
    return lr


OPTIMIZERS: Dict[str, Callable] = {
    "SGD": _sgd,
    "AdamW": _adamw,
    "RAdam": _radam,
    "RMSProp": _rmsprop,
    "Ranger21": _ranger21,
}


def build_optimizer(
    cfg, model: torch.nn.Module, lr_factor_func: Optional[Callable[[str], float]] = None
) -> torch.optim.Optimizer:
    """detectron2's parameter groups (norm / bias weight decay, per-name LR factors such as
    layer-wise decay) handed to the optimizer named by SOLVER.OPTIMIZER, wrapped with
    detectron2's gradient clipping when SOLVER.CLIP_GRADIENTS.ENABLED."""
    name = cfg.SOLVER.OPTIMIZER
    if name not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER={name!r}; expected one of {sorted(OPTIMIZERS)}")
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        lr_factor_func=lr_factor_func,
    )
    if name in _ADAM_FAMILY and cfg.SOLVER.EPS >= _LARGE_ADAM_EPS:
        logging.getLogger(__name__).warning(
            f"SOLVER.EPS={cfg.SOLVER.EPS} with {name}: Adam-style optimizers expect ~1e-8; "
            f"an epsilon this large makes the update plain SGD at BASE_LR"
        )
    optimizer_cls, kwargs = OPTIMIZERS[name](cfg, params)
    return maybe_add_gradient_clipping(cfg, optimizer_cls)(params, lr=cfg.SOLVER.BASE_LR, **kwargs)
