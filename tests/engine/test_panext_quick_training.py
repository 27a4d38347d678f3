"""The CPU quick PaNeXt schedule learns: a 60-iteration run of
configs/quick_schedules/panext_synthetic_cpu.yaml (batch 4, on a 32-image synthetic panoptic
set in a temporary cache) must lower the total loss clearly, read per iteration from
metrics.json (measured: mean of the first 10 iterations ~9.3, of the last 10 ~4.4). About
20 s of CPU time at one thread. Also checks that the PaNeXt-e quick config builds and takes a training step."""
import json
import os

import pytest
from detectron2.engine import hooks
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import JSONWriter

from panext_d2 import Trainer, get_panext_cfg
from panext_d2.data.catalog.synthetic import register_synthetic_panoptic

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # trains / launches processes: see README, Running tests

QUICK = os.path.join(REPO_ROOT, "configs/quick_schedules/panext_synthetic_cpu.yaml")
QUICK_E = os.path.join(REPO_ROOT, "configs/quick_schedules/panext_e_synthetic_cpu.yaml")
TRAIN_SET = "panext_quick_test_train"


class EveryIterationTrainer(Trainer):
    """Writes metrics.json at every iteration, unsmoothed (window 1)."""

    def build_writers(self):
        return [JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=1)]

    def build_hooks(self):
        hook_list = super().build_hooks()
        for h in hook_list:
            if isinstance(h, hooks.PeriodicWriter):
                h._period = 1
        return hook_list


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    register_synthetic_panoptic(
        TRAIN_SET, root=str(tmp_path_factory.mktemp("cache")), num_images=32, seed=0
    )
    return TRAIN_SET


def _cfg(config_file, output_dir, train_set, *opts):
    cfg = get_panext_cfg(
        config_file,
        [
            "DATASETS.TRAIN", f"('{train_set}',)",
            "DATASETS.TEST", "()",
            "SOLVER.IMS_PER_BATCH", "4",
            "SOLVER.CHECKPOINT_PERIOD_FRACTION", "1.0",
            "OUTPUT_DIR", str(output_dir),
            *opts,
        ],
    )
    cfg.freeze()
    return cfg


def _total_losses(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        rows = [json.loads(line) for line in f]
    return [r["total_loss"] for r in sorted(rows, key=lambda r: r["iteration"]) if "total_loss" in r]


def test_quick_panext_loss_falls(tmp_path, train_set):
    seed_all_rng(0)  # weights and the sampler's shuffling (its seed comes from numpy)
    cfg = _cfg(QUICK, tmp_path, train_set, "SOLVER.MAX_ITER", "60")
    trainer = EveryIterationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = _total_losses(tmp_path)
    assert len(losses) == 60
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last, losses)


def test_quick_panext_e_builds_and_steps(tmp_path, train_set):
    cfg = _cfg(QUICK_E, tmp_path, train_set, "SOLVER.MAX_ITER", "2")
    trainer = EveryIterationTrainer(cfg)
    assert type(trainer.model.backbone.bottom_up).__name__ == "PaNeXtEBackbone"
    trainer.train()
    losses = _total_losses(tmp_path)
    assert len(losses) == 2 and all(l == l and l < float("inf") for l in losses)
