"""tools/gpu_check.sh: valid bash, and a clear refusal on a machine without a GPU (the checks
themselves need CUDA; they run on users' GPUs and on a lent device machine)."""
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "tools", "gpu_check.sh")


def test_script_parses():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would run")
def test_without_a_gpu_it_says_so(tmp_path):
    result = subprocess.run(["bash", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHON=sys.executable), timeout=120)
    assert result.returncode == 1 and "no CUDA GPU" in result.stderr
