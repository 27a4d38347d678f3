"""Every recipe's batch divides by the GPU counts docs/GETTING_STARTED.md promises for it
(detectron2 refuses a batch that does not divide by the number of processes)."""
import os

import pytest

from panext_d2 import get_panext_cfg

from .test_configs import CONFIG_DIR
from .test_recipe_gradients import RECIPES

# Recipes whose thesis batch does not divide by every count of 1, 2, 4, 8 GPUs.
FEWER_GPUS = {"lowcost/cityscapes/": (1,), "lowcost/person_crops/": (1, 2, 4)}


def promised_gpu_counts(relpath):
    for prefix, counts in FEWER_GPUS.items():
        if relpath.startswith(prefix):
            return counts
    return (1, 2, 4, 8)


GPU_RECIPES = [p for p in RECIPES if "quick_schedules" not in p]


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_batch_divides_by_the_promised_gpu_counts(path):
    cfg = get_panext_cfg(path)
    batch = cfg.SOLVER.IMS_PER_BATCH
    for gpus in promised_gpu_counts(os.path.relpath(path, CONFIG_DIR)):
        assert batch % gpus == 0, f"IMS_PER_BATCH {batch} on {gpus} GPUs"


def test_the_table_in_the_docs_names_the_exceptions():
    with open(os.path.join(CONFIG_DIR, "..", "docs", "GETTING_STARTED.md")) as f:
        text = f.read()
    assert "| low-cost, Cityscapes (`configs/lowcost/cityscapes/`) | 1 (thesis, 2048x1024) | 1 |" in text
    assert "| low-cost, person crops (`configs/lowcost/person_crops/`) | 4 | 1, 2, 4 |" in text


def test_ssd_isb_keeps_the_effective_batch_of_24():
    for path in (p for p in GPU_RECIPES if "ssd_isb/" in p):
        cfg = get_panext_cfg(path)
        assert cfg.SOLVER.IMS_PER_BATCH * cfg.SOLVER.ACCUMULATE_STEPS == 24
