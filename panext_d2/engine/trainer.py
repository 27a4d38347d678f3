"""detectron2's DefaultTrainer with panext_d2's choices: mapper by name, evaluators by the
dataset's evaluator_type, our optimizers and schedules (the logged ``lr`` is the one applied,
Ranger21's own warm-up / warm-down included), gradient accumulation, a checkpoint period given
as a fraction of the run, atomic checkpoints with resume fallback, and a DDP wrap that also works for CPU processes."""
import logging
import os
import weakref

import torch
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.engine import DefaultTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..data import build_dataset_mapper, build_train_sampler
from ..evaluation import build_evaluator
from ..modeling.backbone.convnext import layer_lr_decay_func
from ..solver import applied_lr, build_lr_scheduler, build_optimizer
from .checkpoint import SafeCheckpointer
from .train_loop import AccumulatingTrainer


def resolve_checkpoint_period(cfg):
    """A copy of cfg whose SOLVER.CHECKPOINT_PERIOD is round(fraction * MAX_ITER) when
    SOLVER.CHECKPOINT_PERIOD_FRACTION > 0 (0.05 = a checkpoint every 5% of the run)."""
    fraction = cfg.SOLVER.CHECKPOINT_PERIOD_FRACTION
    if fraction <= 0:
        return cfg
    if fraction > 1:
        raise ValueError(f"SOLVER.CHECKPOINT_PERIOD_FRACTION must be in (0, 1], got {fraction}")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.CHECKPOINT_PERIOD = max(1, round(fraction * cfg.SOLVER.MAX_ITER))
    cfg.freeze()
    return cfg


def wrap_ddp(model):
    """detectron2's ``create_ddp_model`` (DistributedDataParallel when there are several
    processes), with ``device_ids`` None for CPU modules (gloo), as DDP requires, instead of
    detectron2's default of the local GPU."""
    on_cuda = next(model.parameters()).is_cuda
    return create_ddp_model(
        model, device_ids=[comm.get_local_rank()] if on_cuda else None, broadcast_buffers=False
    )


_PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class LRScheduler(hooks.LRScheduler):
    """detectron2's hook, logging as ``lr`` the LR the optimizer applied (:func:`applied_lr`;
    Ranger21 scales the group's ``lr`` itself while it owns the LR). The class name is kept so
    that checkpoints, which key hook states by it, load either way."""

    def after_step(self):
        lr = applied_lr(self._optimizer, self._best_param_group_id)
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        # DefaultTrainer.__init__ is not reused because its DDP wrap passes device_ids for CPU
        # modules and it knows no accumulation; the construction order is the same.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        if cfg.SOLVER.MAX_ITER <= 0:
            raise ValueError(f"SOLVER.MAX_ITER={cfg.SOLVER.MAX_ITER}: training needs at least one iteration")
        cfg = resolve_checkpoint_period(self.auto_scale_workers(cfg, comm.get_world_size()))
        if cfg.SOLVER.AMP.PRECISION not in _PRECISIONS:
            raise ValueError(
                f"SOLVER.AMP.PRECISION={cfg.SOLVER.AMP.PRECISION!r}; expected one of {sorted(_PRECISIONS)}"
            )

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        self._trainer = AccumulatingTrainer(
            wrap_ddp(model),
            data_loader,
            optimizer,
            accumulate_steps=cfg.SOLVER.ACCUMULATE_STEPS,
            amp=cfg.SOLVER.AMP.ENABLED,
            precision=_PRECISIONS[cfg.SOLVER.AMP.PRECISION],
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SafeCheckpointer(
            self._trainer.model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """detectron2's hooks, with our :class:`LRScheduler` in place of its own."""
        return [
            LRScheduler() if type(h) is hooks.LRScheduler else h for h in super().build_hooks()
        ]

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model, lr_factor_func=layer_lr_decay_func(cfg))

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        """detectron2's loader; with DATALOADER.SAMPLER_TRAIN "ForegroundBalancedSampler" each
        batch gets the configured share of foreground images, so aspect-ratio grouping (which
        would regroup the images) is off."""
        mapper = build_dataset_mapper(cfg, is_train=True)
        if cfg.DATALOADER.SAMPLER_TRAIN != "ForegroundBalancedSampler":
            return build_detection_train_loader(cfg, mapper=mapper)
        dicts = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
        return build_detection_train_loader(
            cfg,
            mapper=mapper,
            dataset=dicts,
            sampler=build_train_sampler(cfg, dicts),
            aspect_ratio_grouping=False,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(
            cfg, dataset_name, mapper=build_dataset_mapper(cfg, is_train=False)
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_evaluator(cfg, dataset_name, output_folder)
