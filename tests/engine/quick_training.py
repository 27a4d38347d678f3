"""Shared by the quick-training tests: train a frozen config in-process with the project's
Trainer and return the per-iteration loss values."""
import numpy as np

from panext_d2 import Trainer


def train_and_read_losses(cfg, names=("total_loss",)):
    """{name: array of the value logged at every iteration}; cfg must be frozen."""
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    history = trainer.storage.history
    return {name: np.array([value for value, _ in history(name).values()]) for name in names}
