import os

import pytest
import torch

# Two cores: keep each test process to one intra-op thread unless a test asks otherwise.
torch.set_num_threads(int(os.environ.get("PANEXT_TEST_THREADS", "1")))

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cfg():
    from panext_d2 import get_panext_cfg

    return get_panext_cfg()
