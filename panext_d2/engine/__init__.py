from .checkpoint import CheckpointReadError, SafeCheckpointer
from .train_loop import AccumulatingTrainer
from .trainer import Trainer, resolve_checkpoint_period, wrap_ddp

__all__ = [
    "AccumulatingTrainer",
    "CheckpointReadError",
    "SafeCheckpointer",
    "Trainer",
    "resolve_checkpoint_period",
    "wrap_ddp",
]
