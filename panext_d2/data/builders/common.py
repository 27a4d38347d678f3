"""Helpers shared by the dataset builders: progress bars, class statistics."""
import os

import numpy as np
from tqdm import tqdm


def progress(iterable, desc, total=None):
    """tqdm progress bar for the builders' long loops."""
    return tqdm(iterable, desc=desc, total=total, unit="img", dynamic_ncols=True)


def format_table(header, rows):
    """Plain-text table: ``header`` and ``rows`` are sequences of cells, right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


class SemSegStats:
    """Image- and pixel-level class shares of label maps (Andrade (2021), Tables 7.1 and 7.2).

    Class 0 is the background; label values beyond the classes (the ignore label 255)
    count for no class and are left out of the pixel total. An image is empty when it has
    no foreground pixel.
    """

    def __init__(self, class_names):
        self.class_names = tuple(class_names)
        self.num_images = 0
        self.num_empty = 0
        self.images_with = np.zeros(len(self.class_names), dtype=np.int64)
        self.pixels = np.zeros(len(self.class_names), dtype=np.int64)

    def add(self, label):
        """Account one label map; return its foreground classes (sorted class ids)."""
        counts = np.bincount(label.ravel(), minlength=256)[: len(self.class_names)]
        foreground = [int(c) for c in np.flatnonzero(counts[1:]) + 1]
        self.num_images += 1
        self.num_empty += not foreground
        self.images_with += counts > 0
        self.pixels += counts
        return foreground

    def merge(self, other):
        """Add another accumulator's counts to this one."""
        self.num_images += other.num_images
        self.num_empty += other.num_empty
        self.images_with += other.images_with
        self.pixels += other.pixels
        return self

    @property
    def image_share(self):
        """Percentage of images containing each class."""
        return 100.0 * self.images_with / max(self.num_images, 1)

    @property
    def empty_share(self):
        """Percentage of images without any foreground pixel."""
        return 100.0 * self.num_empty / max(self.num_images, 1)

    @property
    def pixel_share(self):
        """Percentage of (non-ignored) pixels of each class."""
        return 100.0 * self.pixels / max(int(self.pixels.sum()), 1)

    def format(self, title):
        rows = [
            (name, f"{img:.2f}", f"{pix:.3f}")
            for name, img, pix in zip(self.class_names, self.image_share, self.pixel_share)
        ]
        table = format_table(("class", "image-level %", "pixel-level %"), rows[1:] + rows[:1])
        return (
            f"{title}: {self.num_images} images, {self.empty_share:.2f}% empty\n{table}"
        )


def add_root_argument(parser):
    """``--root``: the datasets folder, default ``$DETECTRON2_DATASETS`` or ``datasets``."""
    parser.add_argument(
        "--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="datasets folder (default: $DETECTRON2_DATASETS, else ./datasets)",
    )


def print_split_stats(stats, classes, name: str, split_label=lambda split: split) -> None:
    """Print the :class:`SemSegStats` of every split (titled ``name split_label(split)``)
    and, with several splits, of all of them together (``name all``)."""
    for split, split_stats in stats.items():
        print(split_stats.format(f"{name} {split_label(split)}"))
    if len(stats) > 1:
        total = SemSegStats(classes)
        for split_stats in stats.values():
            total.merge(split_stats)
        print(total.format(f"{name} all"))
