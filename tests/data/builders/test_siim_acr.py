import json
import os

import cv2
import numpy as np
import pytest

from panext_d2.data.builders.siim_acr import (
    build_siim_acr,
    decode_rle,
    read_rle_csv,
    records_json,
    stratified_split,
)

H, W = 4, 5


def rle2mask_reference(rle, width, height):
    """The official SIIM ``mask_functions.rle2mask``, used as ``rle2mask(...).T``."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    position = 0
    for start, length in zip(array[0::2], array[1::2]):
        position += start
        mask[position : position + length] = 1
        position += length
    return mask.reshape(width, height).T


def test_decode_hand_made_rle_column_major_union():
    # runs at flat 1-2 and 6 (column-major: x = i // H, y = i % H), second row at 18-19
    mask = decode_rle(["1 2 3 1", "18 2"], H, W)
    expected = np.zeros((H, W), np.uint8)
    expected[1:3, 0] = 1
    expected[2, 1] = 1
    expected[2:4, 4] = 1
    np.testing.assert_array_equal(mask, expected)
    assert not decode_rle([], H, W).any()


def test_decode_matches_official_function():
    rng = np.random.default_rng(0)
    runs = rng.integers(1, 6, size=(8, 2))
    rle = " ".join(map(str, runs.ravel()))
    np.testing.assert_array_equal(decode_rle([rle], 7, 11), rle2mask_reference(rle, 11, 7))


def test_stratified_split_shares_and_determinism():
    ids = [f"img{i:03d}" for i in range(100)]
    positive = [i % 10 < 3 for i in range(100)]
    splits = stratified_split(ids, positive, seed=3)
    assert sorted(sum(splits, [])) == ids
    is_pos = dict(zip(ids, positive))
    for split, fraction in zip(splits, (0.81, 0.09, 0.10)):
        assert abs(sum(is_pos[i] for i in split) - fraction * 30) < 1
        assert abs(sum(not is_pos[i] for i in split) - fraction * 70) < 1
    assert [len(s) for s in splits] == [81, 9, 10]
    shuffled = stratified_split(ids[::-1], positive[::-1], seed=3)
    assert shuffled == splits
    assert stratified_split(ids, positive, seed=4) != splits


def write_fixture(tmp_path, n_images=20):
    """siim_acr/ with n PNGs; images 0-4 positive (image 0: two rows), others '-1'."""
    root = tmp_path / "siim_acr"
    os.makedirs(root / "images")
    rng = np.random.default_rng(0)
    rows = ["ImageId, EncodedPixels"]
    for i in range(n_images):
        image_id = f"1.2.276.0.{i}"
        cv2.imwrite(
            str(root / "images" / f"{image_id}.png"), rng.integers(0, 255, (H, W), dtype=np.uint8)
        )
        if i == 0:
            rows += [f"{image_id}, 1 2 3 1", f"{image_id}, 18 2"]
        elif i < 5:
            rows.append(f"{image_id}, {i} 1")
        else:
            rows.append(f"{image_id}, -1")
    (root / "train-rle.csv").write_text("\n".join(rows) + "\n")
    return str(tmp_path)


def test_read_rle_csv(tmp_path):
    root = write_fixture(tmp_path)
    rles = read_rle_csv(os.path.join(root, "siim_acr", "train-rle.csv"))
    assert rles["1.2.276.0.0"] == ["1 2 3 1", "18 2"]
    assert rles["1.2.276.0.7"] == []
    assert len(rles) == 20


def test_build(tmp_path):
    root = write_fixture(tmp_path)
    stats = build_siim_acr(root, seed=0)
    records = {}
    for split in ("train", "val", "test"):
        with open(records_json(root, split)) as f:
            records[split] = json.load(f)
    # 5 positive: 4 / 0 / 1 (largest remainders); 15 empty: 12 / 1 / 2
    assert [sum(bool(r["foreground_classes"]) for r in records[s]) for s in records] == [4, 0, 1]
    assert [len(records[s]) for s in records] == [16, 1, 3]
    mask = cv2.imread(
        os.path.join(root, "siim_acr", "masks", "1.2.276.0.0.png"), cv2.IMREAD_UNCHANGED
    )
    np.testing.assert_array_equal(mask, decode_rle(["1 2 3 1", "18 2"], H, W))
    assert mask.sum() == 5
    record = next(r for s in records.values() for r in s if r["image_id"] == "1.2.276.0.0")
    assert (record["height"], record["width"], record["foreground_classes"]) == (H, W, [1])
    total_pixels = sum(s.pixels.sum() for s in stats.values())
    fg_pixels = sum(s.pixels[1] for s in stats.values())
    assert (total_pixels, fg_pixels) == (20 * H * W, 5 + 4)
    assert stats["train"].image_share[1] == pytest.approx(100 * 4 / 16)
    # deterministic: a second build gives the same split
    build_siim_acr(root, seed=0)
    with open(records_json(root, "val")) as f:
        assert json.load(f) == records["val"]


def test_missing_image_and_dicom_without_pydicom(tmp_path):
    root = write_fixture(tmp_path, n_images=3)
    os.remove(os.path.join(root, "siim_acr", "images", "1.2.276.0.1.png"))
    with pytest.raises(FileNotFoundError, match="1.2.276.0.1"):
        build_siim_acr(root)
    try:
        import pydicom  # noqa: F401
    except ImportError:
        open(os.path.join(root, "siim_acr", "images", "1.2.276.0.1.dcm"), "wb").close()
        with pytest.raises(ImportError, match="pydicom"):
            build_siim_acr(root)
