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


def _venv_with_stub_torch(tmp_path, version=None, ours=False):
    """A Python 3.10 venv (no pip) whose site-packages holds a stub ``torch`` of
    ``version`` (none when None); ``ours`` records it as installed by the setup script."""
    python = os.environ.get("PANEXT_PY310") or sys.executable  # the suite runs on 3.10
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    if version:
        site = next((venv / "lib").glob("python3.10/site-packages"))
        (site / "torch").mkdir()
        (site / "torch" / "__init__.py").write_text(
            f"__version__ = {version!r}\nclass version:\n    cuda = '11.8'\n")
    if ours:
        (venv / ".panext_torch").write_text("torch==x")
    return venv


def _dry_run(venv):
    env = dict(os.environ, VENV=str(venv), SETUP_DRY_RUN="1", PYTHON=sys.executable)
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_users_torch_is_kept(tmp_path):
    out = _dry_run(_venv_with_stub_torch(tmp_path, "2.3.1+cu118"))
    assert "keeping the installed torch 2.3.1+cu118 CUDA 11.8" in out
    assert "installing torch" not in out


def test_no_torch_or_our_own_gets_the_pinned_stack(tmp_path):
    assert "installing torch==" in _dry_run(_venv_with_stub_torch(tmp_path / "a"))
    assert "installing torch==" in _dry_run(_venv_with_stub_torch(tmp_path / "b", "2.0", ours=True))
