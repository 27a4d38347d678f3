from .optimizers import OPTIMIZERS, applied_lr, build_optimizer
from .schedules import (
    ExponentialStepParamScheduler,
    Ranger21ParamScheduler,
    build_lr_scheduler,
)

__all__ = [
    "OPTIMIZERS",
    "applied_lr",
    "build_optimizer",
    "build_lr_scheduler",
    "ExponentialStepParamScheduler",
    "Ranger21ParamScheduler",
]
