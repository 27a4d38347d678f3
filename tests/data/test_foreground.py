"""Foreground classes of records without ``foreground_classes``: read from the label maps
once, then from the cache; a changed label file is read again."""
import os

import numpy as np
import pytest
from PIL import Image

from panext_d2.data import foreground
from panext_d2.data.foreground import foreground_classes


def _label_png(path, values):
    Image.fromarray(np.array(values, dtype=np.uint8)).save(path)
    return str(path)


def test_derived_from_label_maps_and_cached(tmp_path, cache_dir, monkeypatch):
    records = [
        {"file_name": "a.png", "sem_seg_file_name": _label_png(tmp_path / "a.png", [[0, 2], [255, 0]])},
        {"file_name": "b.png", "sem_seg_file_name": _label_png(tmp_path / "b.png", [[0, 0], [255, 0]])},
        {"file_name": "c.png", "foreground_classes": [1]},
    ]
    assert foreground_classes(records) == [[2], [], [1]]
    assert len(os.listdir(cache_dir / "foreground")) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("label map read again")

    monkeypatch.setattr(foreground, "classes_in_label_map", no_reading)
    assert foreground_classes(records) == [[2], [], [1]]  # from the cache
    monkeypatch.undo()
    _label_png(tmp_path / "b.png", [[0, 1], [1, 0]])
    assert foreground_classes(records) == [[2], [1], [1]]


def test_record_with_neither_is_named(cache_dir):
    with pytest.raises(KeyError, match="'x.jpg'"):
        foreground_classes([{"file_name": "x.jpg"}])
