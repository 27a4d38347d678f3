import json

import numpy as np
import pytest
from PIL import Image

from panext_d2.data.catalog.synthetic import sparse_semantic
from panext_d2.data.catalog.synthetic.sparse_semantic import SparseParams


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse")
    sparse_semantic.generate(SparseParams(num_images=40, seed=1), out)
    return out


def test_deterministic_by_seed(generated, tmp_path):
    sparse_semantic.generate(SparseParams(num_images=40, seed=1), tmp_path)
    for name in ("index.json", "images/000003.jpg", "semantic/000003.png"):
        assert (tmp_path / name).read_bytes() == (generated / name).read_bytes()
    assert not np.array_equal(
        sparse_semantic.empty_images(SparseParams(num_images=40, seed=2)),
        sparse_semantic.empty_images(SparseParams(num_images=40, seed=1)),
    )


def test_index_matches_label_pngs(generated):
    index = json.loads((generated / "index.json").read_text())
    assert index["classes"] == ["background", "blob", "streak"]
    for record in index["images"]:
        labels = np.asarray(Image.open(generated / "semantic" / record["sem_seg_file_name"]))
        assert labels.shape == (record["height"], record["width"]) == (128, 128)
        assert set(np.unique(labels)) <= {0, 1, 2}
        assert record["foreground_classes"] == [c for c in (1, 2) if (labels == c).any()]
        assert (labels > 0).mean() < 0.1  # small objects


@pytest.mark.parametrize("share", [0.75, 0.5, 0.9])
def test_empty_share(share):
    params = SparseParams(num_images=400, empty_share=share)
    assert abs(sparse_semantic.empty_images(params).mean() - share) <= 0.01
    empty = sparse_semantic.empty_images(params)
    for index in range(30):
        _, labels = sparse_semantic.render(np.random.default_rng([0, index]), params, empty[index])
        assert (labels.max() == 0) == empty[index]


def test_single_foreground_class_and_validation():
    params = SparseParams(num_images=20, num_classes=1, empty_share=0.0)
    labels = [
        sparse_semantic.render(np.random.default_rng([0, i]), params, False)[1] for i in range(20)
    ]
    assert {int(v) for lab in labels for v in np.unique(lab)} == {0, 1}
    with pytest.raises(ValueError, match="num_classes"):
        SparseParams(num_classes=3)
    with pytest.raises(ValueError, match="empty_share"):
        SparseParams(empty_share=1.5)
