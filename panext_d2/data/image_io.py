"""Reading images and label maps, with errors that name the file.

detectron2's ``read_image`` converts through PIL, which clips 16-bit grayscale (mode
``I;16``, common for medical PNGs) to 255: every such image silently becomes white, and a
palette label map read as "L" turns class indices into the luminance of their colours.
Here:

* :func:`read_image` rescales 16-bit grayscale linearly from 0..65535 to 0..255 (the full
  range of the bit depth, the same for every image) before the usual conversion, and refuses
  floating-point or 32-bit data with a message;
* :func:`read_label_map` returns the stored integers of a label PNG (8-bit, 16-bit or palette
  indices) unchanged;
* a truncated or unreadable file raises ``OSError`` naming it.
"""
import numpy as np
from detectron2.data.detection_utils import _apply_exif_orientation, convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from PIL import Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_INTEGER_LABEL_MODES = ("1", "L", "P", "I", *_SIXTEEN_BIT_MODES)


def _open(path: str) -> Image.Image:
    """The decoded image (pixels loaded, so a truncated file fails here, by name)."""
    try:
        with PathManager.open(path, "rb") as f:
            image = Image.open(f)
            image.load()
            return image
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise OSError(f"cannot read image {path}: {error}") from error


def _to_eight_bit(image: Image.Image, path: str) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"{path}: 32-bit integer image with values in [{values.min()}, {values.max()}]; "
                "expected 8-bit or 16-bit (0..65535) pixels"
            )
        return Image.fromarray(np.round(values * (255.0 / 65535.0)).astype(np.uint8), "L")
    if image.mode == "F":
        raise ValueError(f"{path}: floating-point image (PIL mode F); expected 8- or 16-bit pixels")
    return image


def read_image(path: str, format: str = None) -> np.ndarray:
    """detectron2's ``read_image`` (EXIF orientation, then ``format``: "RGB", "BGR", "L",
    ...), for 8- and 16-bit images, naming the file when it cannot be read."""
    image = _apply_exif_orientation(_open(path))
    return convert_PIL_to_numpy(_to_eight_bit(image, path), format)


def read_label_map(path: str) -> np.ndarray:
    """(H, W) int64 class indices of a label PNG as stored (palette indices for mode P)."""
    image = _open(path)
    if image.mode not in _INTEGER_LABEL_MODES:
        raise ValueError(
            f"{path}: label map of PIL mode {image.mode}; expected one integer channel "
            f"(modes {', '.join(_INTEGER_LABEL_MODES)}), e.g. an 8-bit grayscale or palette PNG"
        )
    return np.asarray(image).astype(np.int64)
