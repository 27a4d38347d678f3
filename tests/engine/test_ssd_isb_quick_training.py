"""A short run of the quick SSD-ISB Multi-Shape schedule
(configs/quick_schedules/ssd_isb_ms_synthetic_cpu.yaml) through the project's Trainer: the
detection and mask losses fall clearly within a few dozen updates from scratch."""
import os

import numpy as np
import pytest

from panext_d2 import get_panext_cfg
from tests.conftest import REPO_ROOT
from tests.engine.quick_training import train_and_read_losses

pytestmark = pytest.mark.slow  # trains / launches processes: see README, Running tests

QUICK = os.path.join(REPO_ROOT, "configs/quick_schedules/ssd_isb_ms_synthetic_cpu.yaml")


def test_quick_multi_shape_schedule_loss_falls(tmp_path):
    cfg = get_panext_cfg(
        QUICK,
        [
            "INPUT.SSD_SIZE", "128",  # stride-32 grid 4x4: seconds per run on one thread
            "SOLVER.IMS_PER_BATCH", "4",
            "SOLVER.MAX_ITER", "40",
            "SOLVER.WARMUP_ITERS", "5",
            "DATALOADER.NUM_WORKERS", "0",
            "DATASETS.TEST", "()",
            "OUTPUT_DIR", str(tmp_path),
        ],
    )
    cfg.freeze()
    losses = train_and_read_losses(cfg, ("total_loss", "loss_cls", "loss_mask"))

    def first_last(name, k=5):
        values = losses[name]
        assert len(values) == cfg.SOLVER.MAX_ITER and np.isfinite(values).all()
        return values[:k].mean(), values[-k:].mean()

    # Observed on the 2-core CPU: total 117.5 -> 90.2 (mostly the weighted mask BCE).
    first, last = first_last("total_loss")
    assert last < 0.85 * first, (first, last)
    for name in ("loss_cls", "loss_mask"):
        first, last = first_last(name)
        assert last < 0.9 * first, (name, first, last)
