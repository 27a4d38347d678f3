"""Image-level foreground labels of semantic datasets, for the foreground-balanced sampler.

Our registrations carry a ``foreground_classes`` list per record. A dataset registered the
plain detectron2 way (``file_name`` + ``sem_seg_file_name``) has none: the classes present in
each label map (other than the background class and the ignore value) are then read once and
cached under ``$PANEXT_D2_CACHE/foreground/``, keyed by the label files' paths, sizes and
modification times, so a changed file is read again.
"""
import hashlib
import json
import logging
import os
from typing import List, Sequence

import numpy as np

from .catalog.synthetic.cache import cache_root
from .image_io import read_label_map

logger = logging.getLogger(__name__)


def _label_file_key(path: str) -> list:
    stat = os.stat(path)
    return [path, stat.st_size, stat.st_mtime_ns]


def classes_in_label_map(path: str, background: int = 0, ignore_value: int = 255) -> List[int]:
    labels = np.unique(read_label_map(path))
    return [int(c) for c in labels if c not in (background, ignore_value)]


def foreground_classes(
    dataset_dicts: Sequence[dict], background: int = 0, ignore_value: int = 255
) -> List[List[int]]:
    """Per record, its ``foreground_classes``, or the classes read from its label map."""
    derive = [i for i, d in enumerate(dataset_dicts) if "foreground_classes" not in d]
    missing = [dataset_dicts[i].get("file_name", "?") for i in derive if "sem_seg_file_name" not in dataset_dicts[i]]
    if missing:
        raise KeyError(
            "image-level sampling needs 'foreground_classes' or a 'sem_seg_file_name' label map "
            f"in every record; {len(missing)} record(s) have neither, e.g. {missing[0]!r}"
        )
    found = [d.get("foreground_classes") for d in dataset_dicts]
    if not derive:
        return found
    keys = [_label_file_key(dataset_dicts[i]["sem_seg_file_name"]) for i in derive]
    digest = hashlib.sha1(json.dumps([keys, background, ignore_value]).encode()).hexdigest()[:16]
    cache_file = cache_root() / "foreground" / f"{digest}.json"
    if cache_file.is_file():
        derived = json.loads(cache_file.read_text())
    else:
        logger.info(f"Reading {len(derive)} label maps for their foreground classes ...")
        derived = [classes_in_label_map(k[0], background, ignore_value) for k in keys]
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(derived))
        os.replace(tmp, cache_file)
    for i, classes in zip(derive, derived):
        found[i] = classes
    return found
