import multiprocessing
import os

import pytest

from panext_d2.data.catalog.synthetic import cache, panoptic
from panext_d2.data.catalog.synthetic.cache import check_files, dataset_dir, ensure_generated
from panext_d2.data.json_io import read_json


def _tree(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_cache_root_from_env(cache_dir):
    assert cache.cache_root() == cache_dir
    assert dataset_dir("x", {"a": 1}).parent == cache_dir


def test_folder_name_has_version_and_parameter_hash(tmp_path):
    a = dataset_dir("synthetic_panoptic", {"num_images": 4, "seed": 0}, tmp_path)
    assert a.name.startswith(f"synthetic_panoptic-v{cache.GENERATOR_VERSION}-")
    assert a == dataset_dir("synthetic_panoptic", {"seed": 0, "num_images": 4}, tmp_path)
    assert a != dataset_dir("synthetic_panoptic", {"num_images": 4, "seed": 1}, tmp_path)


def test_folder_name_changes_with_generator_version(tmp_path, monkeypatch):
    a = dataset_dir("k", {"seed": 0}, tmp_path)
    monkeypatch.setattr(cache, "GENERATOR_VERSION", cache.GENERATOR_VERSION + 1)
    assert dataset_dir("k", {"seed": 0}, tmp_path) != a


def _build_small(out_dir):
    panoptic.generate(panoptic.PanopticParams(num_images=3, seed=5), out_dir)


def test_race_loser_discards_its_copy(tmp_path):
    """Another process renames its copy into place while this one is still building."""
    target = tmp_path / "set"

    def build_while_other_wins(out_dir):
        ensure_generated(target, _build_small)  # the "other process" finishes first
        winner_files = _tree(target)
        _build_small(out_dir)
        (out_dir / "marker_of_loser").write_text("x")
        build_while_other_wins.winner = winner_files

    assert ensure_generated(target, build_while_other_wins) == target
    assert _tree(target) == build_while_other_wins.winner  # the winner's copy was kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temp folders left


def _build_small_into(folder):
    folder.mkdir()
    _build_small(folder)


def _race_worker(target, barrier):
    barrier.wait()
    ensure_generated(target, _build_small)


def test_two_processes_generate_concurrently(tmp_path):
    ctx = multiprocessing.get_context("fork")
    target = tmp_path / "set"
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_race_worker, args=(target, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    reference = tmp_path / "reference"
    _build_small_into(reference)
    assert _tree(target) == _tree(reference)


def test_failed_build_leaves_nothing(tmp_path):
    def failing(out_dir):
        (out_dir / "partial").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ensure_generated(tmp_path / "set", failing)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_not_rebuilt(tmp_path):
    (tmp_path / "set").mkdir()
    ensure_generated(tmp_path / "set", lambda out_dir: pytest.fail("rebuilt"))


def test_missing_and_corrupt_files_are_named(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_json(missing)
    corrupt = tmp_path / "bad.json"
    corrupt.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(corrupt)
    with pytest.raises(FileNotFoundError, match="absent.png"):
        check_files([str(corrupt), str(tmp_path / "absent.png")])


def test_folders_of_killed_builds_are_removed(tmp_path):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    abandoned = tmp_path / f".set.tmp-{host}-{dead.pid}-abcd"
    running = tmp_path / f".set.tmp-{host}-{os.getpid()}-efgh"  # a live builder's
    abandoned.mkdir()
    running.mkdir()
    ensure_generated(tmp_path / "set", lambda out: (out / "done").write_text("1"))
    assert not abandoned.exists() and running.exists()
    assert (tmp_path / "set" / "done").exists()
