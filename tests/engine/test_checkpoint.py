"""Atomic checkpoint writes, named read errors and resume fallback (SafeCheckpointer)."""
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from panext_d2.engine import CheckpointReadError, SafeCheckpointer


class _Net(torch.nn.Module):
    def __init__(self, size=4):
        super().__init__()
        self.linear = torch.nn.Linear(size, size)


def _saved(folder, name, value):
    """Save a model whose weights are all ``value`` as ``<name>.pth``; return its path."""
    model = _Net()
    torch.nn.init.constant_(model.linear.weight, value)
    SafeCheckpointer(model, str(folder)).save(name)
    time.sleep(0.01)  # distinct modification times
    return folder / f"{name}.pth"


def _resumed_value(folder):
    model = _Net()
    SafeCheckpointer(model, str(folder)).resume_or_load("", resume=True)
    return float(model.linear.weight[0, 0])


def test_save_writes_the_file_and_tag_and_leaves_no_temporary(tmp_path):
    _saved(tmp_path, "model_0000009", 1.0)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"


def test_interrupted_write_leaves_the_previous_checkpoint_and_tag(tmp_path, monkeypatch):
    previous = _saved(tmp_path, "model_0000009", 1.0)
    before = previous.read_bytes()

    def killed_midway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # what a signal does in the middle of torch.save

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        SafeCheckpointer(_Net(), str(tmp_path)).save("model_0000019")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert previous.read_bytes() == before
    # and overwriting a checkpoint under the same name keeps the old one intact
    with pytest.raises(KeyboardInterrupt):
        SafeCheckpointer(_Net(), str(tmp_path)).save("model_0000009")
    assert previous.read_bytes() == before
    monkeypatch.undo()
    assert _resumed_value(tmp_path) == 1.0


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing"])
def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, damage, caplog):
    _saved(tmp_path, "model_0000004", 1.0)
    _saved(tmp_path, "model_0000009", 2.0)
    newest = _saved(tmp_path, "model_0000014", 3.0)
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:300])
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        newest.unlink()
    with caplog.at_level(logging.WARNING):
        assert _resumed_value(tmp_path) == 2.0
    assert "model_0000014.pth" in caplog.text and "model_0000009.pth" in caplog.text


def test_unreadable_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "model_final.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointReadError, match="model_final.pth.*0 bytes"):
        SafeCheckpointer(_Net()).load(str(path))


def test_resume_with_nothing_loadable_says_what_to_do(tmp_path):
    (tmp_path / "model_0000004.pth").write_bytes(b"garbage")
    (tmp_path / "last_checkpoint").write_text("model_0000004.pth")
    with pytest.raises(CheckpointReadError, match="last_checkpoint"):
        _resumed_value(tmp_path)


_SAVE_FOREVER = """
import sys, torch
from panext_d2.engine import SafeCheckpointer
model = torch.nn.Linear(1024, 2048)  # 8 MiB of weights per checkpoint
checkpointer = SafeCheckpointer(model, sys.argv[1])
i = 0
while True:
    torch.nn.init.constant_(model.weight, float(i))
    checkpointer.save(f"model_{i % 3:07d}")  # overwrites names, as max_to_keep would
    i += 1
"""


@pytest.mark.slow
def test_kill_during_saves_never_leaves_a_truncated_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    for attempt in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(tmp_path)])
        started, tag = time.time(), tmp_path / "last_checkpoint"
        while not (tag.exists() and tag.stat().st_mtime > started):  # past the imports
            assert proc.poll() is None and time.time() < started + 60
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))  # a few more saves, then a kill at a random point
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for path in tmp_path.glob("model_*.pth"):
            SafeCheckpointer(torch.nn.Linear(1024, 2048)).load(str(path))  # raises if truncated
        tagged = (tmp_path / "last_checkpoint").read_text()
        assert (tmp_path / tagged).is_file()
    for name in ("model_0000000", "model_0000001", "model_0000002"):
        SafeCheckpointer(torch.nn.Linear(1, 1), str(tmp_path)).save(name)
    assert not list(tmp_path.glob(".*.tmp"))  # leftovers of the killed writers are gone


def test_evaluation_refuses_a_checkpoint_of_another_model(tmp_path):
    from panext_d2.engine import load_for_evaluation

    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    SafeCheckpointer(other, str(tmp_path)).save("other")
    with pytest.raises(ValueError, match="other.pth.*none of the model's 2 parameters"):
        load_for_evaluation(_Net(), str(tmp_path / "other.pth"), str(tmp_path), resume=False,
                            allow_random=False)
    load_for_evaluation(_Net(), str(tmp_path / "other.pth"), str(tmp_path), resume=False,
                        allow_random=True)
    net = _Net()
    load_for_evaluation(net, str(_saved(tmp_path, "mine", 5.0)), str(tmp_path), resume=False,
                        allow_random=False)
    assert float(net.linear.weight[0, 0]) == 5.0
