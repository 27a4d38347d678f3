"""A model whose class count disagrees with its dataset is refused at build time, naming both."""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from panext_d2.modeling.encdec.meta_arch import check_num_classes


@pytest.fixture
def three_class_set():
    name = "test_three_classes"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(stuff_classes=["background", "crack", "spot"])
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_encdec_class_count_must_match_the_dataset(three_class_set):
    check_num_classes(3, [three_class_set])
    with pytest.raises(ValueError, match="test_three_classes.*3 classes.*NUM_CLASSES is 2"):
        check_num_classes(2, [three_class_set])
