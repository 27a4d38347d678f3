from .checkpoint import CheckpointReadError, SafeCheckpointer, load_for_evaluation
from .train_loop import AccumulatingTrainer
from .trainer import Trainer, resolve_checkpoint_period, wrap_ddp

__all__ = [
    "AccumulatingTrainer",
    "CheckpointReadError",
    "SafeCheckpointer",
    "Trainer",
    "load_for_evaluation",
    "resolve_checkpoint_period",
    "wrap_ddp",
]
