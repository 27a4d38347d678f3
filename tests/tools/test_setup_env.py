"""tools/setup_env.sh: a clear failure without Python 3.10, and a no-op when up to date."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # trains / launches processes: see README, Running tests

SCRIPT = os.path.join(REPO_ROOT, "tools", "setup_env.sh")


def test_missing_python310_fails_with_a_clear_message(tmp_path):
    env = dict(os.environ, PYTHON="/bin/false", VENV=str(tmp_path / "venv"))
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Python 3.10 is required" in result.stderr and "PYTHON=" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_second_run_is_a_no_op():
    venv = sys.prefix
    if not os.path.exists(os.path.join(venv, ".panext_setup")):
        pytest.skip("tests are not running inside a venv built by tools/setup_env.sh")
    env = dict(os.environ, VENV=venv)
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
