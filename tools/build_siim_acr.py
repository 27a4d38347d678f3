#!/usr/bin/env python
"""Build SIIM-ACR pneumothorax (Andrade (2021) §7.1.1): masks from Kaggle's RLE csv, an 81/9/10
split stratified by empty / non-empty images, and the Table 7.1 statistics.

Input under <root>/siim_acr: train-rle.csv and images/<ImageId>.png (or --csv / --images;
DICOM <ImageId>.dcm files anywhere under --images are converted when pydicom is installed).
"""
import argparse

from panext_d2.data.builders.common import add_root_argument, print_split_stats
from panext_d2.data.builders.siim_acr import CLASSES, build_siim_acr

THESIS_TABLE = ("Andrade (2021) Table 7.1: 10675 images, 8647 / 961 / 1067; pneumothorax 24.25% of "
              "images, 0.32% of pixels")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_root_argument(parser)
    parser.add_argument("--csv", help="RLE csv (default: <root>/siim_acr/train-rle.csv)")
    parser.add_argument("--images", help="image folder (default: <root>/siim_acr/images)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    args = parser.parse_args()
    stats = build_siim_acr(args.root, args.csv, args.images, args.seed)
    print_split_stats(stats, CLASSES, "siim_acr")
    print(THESIS_TABLE)


if __name__ == "__main__":
    main()
