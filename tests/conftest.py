import os

import pytest
import torch

# Two cores: keep each test process to one intra-op thread unless a test asks otherwise.
torch.set_num_threads(int(os.environ.get("PANEXT_TEST_THREADS", "1")))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The two real COCO val2017 images vendored for tests (see its README).
COCO_SAMPLES = os.path.join(REPO_ROOT, "tests", "data", "coco_panoptic_samples")


@pytest.fixture
def cfg():
    from panext_d2 import get_panext_cfg

    return get_panext_cfg()
