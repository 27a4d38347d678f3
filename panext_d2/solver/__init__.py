from .optimizers import OPTIMIZERS, build_optimizer
from .schedules import (
    ExponentialStepParamScheduler,
    Ranger21ParamScheduler,
    build_lr_scheduler,
)

__all__ = [
    "OPTIMIZERS",
    "build_optimizer",
    "build_lr_scheduler",
    "ExponentialStepParamScheduler",
    "Ranger21ParamScheduler",
]
