"""End-to-end trainer behaviour through train_net.py: fractional checkpoint period, resume
after a kill, CPU multi-process training + evaluation, and --eval-only."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from panext_d2 import get_panext_cfg
from panext_d2.engine import resolve_checkpoint_period

from tests.conftest import REPO_ROOT

TINY = os.path.join(REPO_ROOT, "configs/quick_schedules/panoptic_fpn_R18_synthetic_tiny.yaml")


def _train_net(*args, output_dir):
    """train_net.py in a subprocess whose console output goes to ``<output_dir>.console``
    (a file, not a pipe, so a chatty run never blocks on a full pipe)."""
    cmd = [sys.executable, "-W", "ignore", os.path.join(REPO_ROOT, "train_net.py"),
           "--config-file", TINY, *args, "OUTPUT_DIR", str(output_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    console = open(f"{output_dir}.console", "a")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=console, stderr=subprocess.STDOUT)
    proc.console = console.name
    return proc


def _finish(proc, timeout):
    proc.wait(timeout=timeout)
    with open(proc.console) as f:
        out = f.read()
    assert proc.returncode == 0, out[-3000:]
    return out


def _iterations(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line)["iteration"] for line in f if '"iteration"' in line]


def test_checkpoint_period_fraction():
    cfg = get_panext_cfg(opts=["SOLVER.MAX_ITER", "270000", "SOLVER.CHECKPOINT_PERIOD_FRACTION", "0.05"])
    assert resolve_checkpoint_period(cfg).SOLVER.CHECKPOINT_PERIOD == 13500
    cfg.SOLVER.CHECKPOINT_PERIOD_FRACTION = 1.5
    with pytest.raises(ValueError, match="CHECKPOINT_PERIOD_FRACTION"):
        resolve_checkpoint_period(cfg)


def test_no_iterations_is_an_error():
    from panext_d2 import Trainer

    cfg = get_panext_cfg(TINY, ["SOLVER.MAX_ITER", "0"])
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER=0"):
        Trainer(cfg)


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    schedule = ["SOLVER.MAX_ITER", "16", "SOLVER.CHECKPOINT_PERIOD_FRACTION", "0.25",
                "DATASETS.TEST", "()"]
    proc = _train_net(*schedule, output_dir=tmp_path)
    deadline = time.time() + 240
    resumed_from = -1
    while resumed_from < 7:  # kill once the checkpoint of iteration 7 (or later) is tagged
        assert proc.poll() is None, open(proc.console).read()[-3000:]
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
        tag = tmp_path / "last_checkpoint"
        if tag.exists() and tag.read_text().strip().startswith("model_0"):
            resumed_from = int(tag.read_text().strip()[len("model_"):-len(".pth")])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "model_final.pth").exists()
    assert resumed_from >= 7
    before = _iterations(tmp_path)

    _finish(_train_net("--resume", *schedule, output_dir=tmp_path), timeout=300)
    after = _iterations(tmp_path)[len(before):]
    # Periodic checkpoints are written every 4 iterations (0.25 of 16): 3, 7, 11, 15.
    assert resumed_from in (7, 11)
    assert after and min(after) > resumed_from, (resumed_from, after)
    assert max(after) == 15
    assert (tmp_path / "model_final.pth").exists()


@pytest.mark.slow
def test_two_cpu_processes_train_and_evaluate_then_eval_only(tmp_path):
    out = _finish(_train_net("--num-gpus", "2", "SOLVER.MAX_ITER", "3", output_dir=tmp_path / "ddp"), 400)
    assert "world size: 2" in out.lower() or "Rank of current process: 1" in out
    assert "copypaste: PQ,SQ,RQ" in out
    weights = tmp_path / "ddp" / "model_final.pth"
    assert weights.exists()

    out = _finish(_train_net("--eval-only", "MODEL.WEIGHTS", str(weights), output_dir=tmp_path / "eval"), 300)
    assert "copypaste: PQ,SQ,RQ" in out
