#!/usr/bin/env python
"""Build COCO BikeCar (Andrade (2021) §7.1.2): semantic PNGs (0 background, 1 bicycle, 2 car)
for every COCO image, per-image records with their foreground classes, and the Table 7.2
statistics.
"""
import argparse

from panext_d2.data.builders.coco_bikecar import CLASSES, SPLITS, build_coco_bikecar
from panext_d2.data.builders.common import add_root_argument, print_split_stats

THESIS_TABLE = ("Andrade (2021) Table 7.2 (image-level % / pixel-level %): bicycle 2.98 / 0.183, "
              "car 10.70 / 0.617, background 100 / 99.20")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add_root_argument(parser)
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--crowd", choices=("class", "ignore"), default="class",
                        help="label of crowd regions: their class (default) or 255")
    args = parser.parse_args()
    stats = build_coco_bikecar(args.root, args.splits, args.crowd)
    print_split_stats(stats, CLASSES, "coco_bikecar", lambda split: f"{split}2017")
    print(THESIS_TABLE)


if __name__ == "__main__":
    main()
