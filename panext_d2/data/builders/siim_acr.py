"""SIIM-ACR pneumothorax (Andrade (2021) §7.1.1, Table 7.1).

Input, under ``siim_acr/`` (Kaggle's stage-1 files):

* ``train-rle.csv``: columns ``ImageId`` and ``EncodedPixels`` (header names may carry
  spaces, as Kaggle's do), one row per lesion; ``-1`` marks an empty image and the rows of
  one image are unioned. ``EncodedPixels`` is SIIM's *relative* RLE (each start counts from
  the end of the previous run) over the column-major pixel order of the official
  ``mask_functions.py`` (``rle2mask(rle, width, height).T``).
* the images, searched recursively under ``images/`` (or ``--images``): ``<ImageId>.png``,
  or ``<ImageId>.dcm`` (Kaggle's ``dicom-images-train`` tree), which needs ``pydicom``.

Output, under ``siim_acr/``: ``images/<ImageId>.png`` (8-bit grayscale, written only when
the source is elsewhere or DICOM), ``masks/<ImageId>.png`` (0 background, 1 pneumothorax),
and ``{train,val,test}.json`` records (``file_name`` relative to ``images/``,
``sem_seg_file_name`` relative to ``masks/``, ``height``, ``width``, ``image_id``,
``foreground_classes``) from an 81/9/10 split stratified by empty / non-empty images.
"""
import csv
import os
import shutil
from collections import defaultdict

import cv2
import numpy as np
from PIL import Image

from ..json_io import write_json
from .common import SemSegStats, progress

SPLITS = ("train", "val", "test")
FRACTIONS = (0.81, 0.09, 0.10)
CLASSES = ("background", "pneumothorax")


def dataset_dir(root):
    return os.path.join(root, "siim_acr")


def records_json(root, split):
    return os.path.join(dataset_dir(root), f"{split}.json")


def read_rle_csv(path):
    """{ImageId: [EncodedPixels, ...]} in file order, with ``-1`` rows kept as ``[]``."""
    rles = defaultdict(list)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        id_col, rle_col = header.index("ImageId"), header.index("EncodedPixels")
        for row in reader:
            rle = row[rle_col].strip()
            rles[row[id_col].strip()] += [] if rle in ("-1", "") else [rle]
    return dict(rles)


def decode_rle(rles, height, width):
    """(height, width) uint8 mask, 1 inside the union of SIIM relative RLEs ``rles``."""
    runs = [np.asarray(r.split(), dtype=np.int64).reshape(-1, 2) for r in rles]
    diff = np.zeros(height * width + 1, dtype=np.int32)
    for run in runs:
        starts = np.cumsum(run[:, 0]) + np.concatenate([[0], np.cumsum(run[:-1, 1])])
        np.add.at(diff, starts, 1)
        np.add.at(diff, starts + run[:, 1], -1)
    flat = np.cumsum(diff[:-1]) > 0
    return flat.reshape(width, height).T.astype(np.uint8)  # column-major pixel order


def _largest_remainder(fractions, n):
    """Integers proportional to ``fractions`` summing to ``n``."""
    quotas = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(quotas).astype(np.int64)
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def stratified_split(image_ids, positive, fractions=FRACTIONS, seed=0):
    """Split ids into ``len(fractions)`` lists, each stratum (positive / empty) in proportion.

    Ids are sorted before a seeded shuffle, so the split depends on the ids and the seed
    only; each stratum is cut by largest-remainder rounding of its share of each split.
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(image_ids, kind="stable")
    ids = np.asarray(image_ids, dtype=object)[order]
    pos = np.asarray(positive, dtype=bool)[order]
    splits = [[] for _ in fractions]
    for stratum in (ids[pos], ids[~pos]):
        stratum = stratum[rng.permutation(len(stratum))]
        bounds = np.cumsum(_largest_remainder(fractions, len(stratum)))[:-1]
        for split, part in zip(splits, np.split(stratum, bounds)):
            split.extend(part.tolist())
    return [sorted(s) for s in splits]


def find_images(images_dir):
    """{ImageId: path} of every ``.png`` / ``.dcm`` under ``images_dir`` (PNG preferred)."""
    found = {}
    for dirpath, _, names in os.walk(images_dir):
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() in (".png", ".dcm") and not found.get(stem, "").endswith(".png"):
                found[stem] = os.path.join(dirpath, name)
    return found


def read_dicom(path):
    """8-bit pixel array of a DICOM file."""
    try:
        import pydicom
    except ImportError as e:
        raise ImportError(
            f"{path} is DICOM: install pydicom to read it, or convert the images to "
            "<ImageId>.png first"
        ) from e
    pixels = pydicom.dcmread(path).pixel_array
    return pixels if pixels.dtype == np.uint8 else cv2.normalize(
        pixels, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


def materialise_image(source, target):
    """Make ``target`` a PNG copy of ``source`` (PNG or DICOM); return (height, width)."""
    if source.lower().endswith(".dcm"):
        cv2.imwrite(target, read_dicom(source))
    elif os.path.abspath(source) != os.path.abspath(target):
        shutil.copyfile(source, target)
    with Image.open(target) as image:
        return image.height, image.width


def build_siim_acr(root, csv_path=None, images_dir=None, seed=0):
    """Build masks and the stratified split under ``root/siim_acr``; return {split: stats}."""
    out = dataset_dir(root)
    images_dir = images_dir or os.path.join(out, "images")
    rles = read_rle_csv(csv_path or os.path.join(out, "train-rle.csv"))
    sources = find_images(images_dir)
    missing = sorted(set(rles) - set(sources))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} SIIM-ACR images listed in the RLE csv are not under "
            f"{images_dir}, e.g. {missing[0]}.png (or .dcm)"
        )
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    ids = sorted(rles)
    split_ids = stratified_split(ids, [bool(rles[i]) for i in ids], FRACTIONS, seed)
    stats = {}
    for split, members in zip(SPLITS, split_ids):
        stats[split] = SemSegStats(CLASSES)
        records = []
        for image_id in progress(members, desc=f"siim_acr {split}"):
            name = f"{image_id}.png"
            height, width = materialise_image(sources[image_id], os.path.join(out, "images", name))
            mask = decode_rle(rles[image_id], height, width)
            cv2.imwrite(os.path.join(out, "masks", name), mask)
            records.append({
                "file_name": name,
                "sem_seg_file_name": name,
                "height": height,
                "width": width,
                "image_id": image_id,
                "foreground_classes": stats[split].add(mask),
            })
        write_json(records, records_json(root, split))
    return stats
