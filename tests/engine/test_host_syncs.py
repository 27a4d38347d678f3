"""Host-device synchronisations per image (see tests/host_syncs.py for what is counted): at
most 20 at inference with 100 candidates and at most 10 per training step, for every family.
On a GPU these read-backs, not the convolutions, set the frame rate."""
import os

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from panext_d2 import get_panext_cfg
from tests.conftest import REPO_ROOT
from tests.configs.test_recipe_gradients import _batch
from tests.host_syncs import count_host_syncs

INFERENCE_BUDGET, TRAINING_BUDGET = 20, 10
# config, options putting the model at its full inference load
CASES = {
    "panext": ("quick_schedules/panext_synthetic_cpu.yaml", [
        "MODEL.PANEXT.INFERENCE.THING_SCORE_THRESH", "0.0", "MODEL.PANEXT.INFERENCE.STUFF_SCORE_THRESH",
        "0.0", "MODEL.PANEXT.INFERENCE.COMBINE_SCORE_THRESH", "0.0"]),
    "ssd_isb": ("ssd_isb/ssd_isb_ms_mn1.0_fcn8_person.yaml", []),
    "encdec": ("quick_schedules/encdec_proposed_synthetic_cpu.yaml", []),
    "lowcost": ("lowcost/person_crops/fcn8_os32.yaml", []),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def model_and_batch(request):
    config, opts = CASES[request.param]
    cfg = get_panext_cfg(os.path.join(REPO_ROOT, "configs", config), ["MODEL.DEVICE", "cpu", *opts])
    torch.manual_seed(0)
    model = build_model(cfg)
    return request.param, model, _batch(cfg, model)


def test_inference_syncs(model_and_batch):
    family, model, batch = model_and_batch
    images = [{"image": x["image"], "height": x["image"].shape[1], "width": x["image"].shape[2]}
              for x in batch]
    model.eval()
    with torch.no_grad(), count_host_syncs() as counts:
        outputs = model(images)
    if family == "panext":
        assert len(outputs[0]["instances"]) > 20  # the load: many candidates reached the merge
    if family == "ssd_isb":
        assert len(outputs[0]["instances"]) > 50
    per_image = sum(counts.values()) / len(images)
    assert per_image <= INFERENCE_BUDGET, dict(counts)


def test_training_step_syncs(model_and_batch):
    family, model, batch = model_and_batch
    model.train()
    with EventStorage(), count_host_syncs() as counts:
        model(batch)
    assert sum(counts.values()) <= TRAINING_BUDGET, dict(counts)
