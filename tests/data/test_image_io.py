"""Images and label maps read with their real values, and errors that name the file."""
import numpy as np
import pytest
from detectron2.data.detection_utils import read_image as detectron2_read_image
from PIL import Image

from panext_d2.data.image_io import read_image, read_label_map
from tests.conftest import COCO_SAMPLES

JPEG = f"{COCO_SAMPLES}/images/000000142238.jpg"


def _gradient_16bit(path):
    values = np.linspace(0, 65535, 40 * 50).round().astype(np.uint16).reshape(40, 50)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    return values


def test_16bit_grayscale_is_rescaled_not_clipped(tmp_path):
    values = _gradient_16bit(tmp_path / "xray.png")
    image = read_image(str(tmp_path / "xray.png"), "RGB")
    assert image.dtype == np.uint8 and image.shape == (40, 50, 3)
    expected = np.round(values * (255 / 65535)).astype(np.uint8)
    assert (image[..., 0] == expected).all() and (image[..., 2] == expected).all()
    # detectron2's reader clips: nearly every pixel of the gradient is white
    assert (detectron2_read_image(str(tmp_path / "xray.png"), "RGB") == 255).mean() > 0.99


def test_8bit_images_read_as_detectron2_reads_them(tmp_path):
    gray = (np.arange(40 * 50) % 256).astype(np.uint8).reshape(40, 50)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    for path, fmt in ((str(tmp_path / "gray.png"), "BGR"), (JPEG, "BGR"), (JPEG, "RGB")):
        assert np.array_equal(read_image(path, fmt), detectron2_read_image(path, fmt))


def test_label_maps_keep_their_indices(tmp_path):
    labels = np.array([[0, 7], [3, 255]], dtype=np.uint8)
    palette = Image.fromarray(labels, "P")
    palette.putpalette([30, 200, 90] * 256)
    palette.save(tmp_path / "palette.png")
    Image.fromarray(np.array([[0, 300], [2, 1]], dtype=np.uint16)).save(tmp_path / "wide.png")
    assert read_label_map(str(tmp_path / "palette.png")).tolist() == labels.tolist()
    assert read_label_map(str(tmp_path / "wide.png")).tolist() == [[0, 300], [2, 1]]
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        read_label_map(str(tmp_path / "rgb.png"))


def test_truncated_and_missing_files_are_named(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(JPEG, "rb").read()[:20000])
    with pytest.raises(OSError, match="truncated.jpg"):
        read_image(str(truncated), "BGR")
    with pytest.raises(FileNotFoundError, match="absent.jpg"):
        read_image(str(tmp_path / "absent.jpg"), "BGR")


def test_float_and_wide_integer_images_are_refused(tmp_path):
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(ValueError, match="float.tiff.*floating-point"):
        read_image(str(tmp_path / "float.tiff"), "RGB")
    Image.fromarray(np.full((4, 4), 70000, np.int32), "I").save(tmp_path / "wide.tiff")
    with pytest.raises(ValueError, match="wide.tiff.*0..65535"):
        read_image(str(tmp_path / "wide.tiff"), "RGB")
