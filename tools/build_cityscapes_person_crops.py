#!/usr/bin/env python
"""Build the Cityscapes person crops (Kolhatkar (2020) §4.3): every person instance cropped at
aspect 5/3 with 0 / 5 / 10 % extra background per side, resized to 320x192 and 160x96,
only the centred person labelled.
"""
import argparse

from panext_d2.data.builders.cityscapes_person_crops import (
    BACKGROUNDS,
    SPLITS,
    build_cityscapes_person_crops,
)
from panext_d2.data.builders.common import add_root_argument, format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    add_root_argument(parser)
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--backgrounds", nargs="+", type=int, default=list(BACKGROUNDS),
                        help="extra background per side, percent")
    args = parser.parse_args()
    stats = build_cityscapes_person_crops(args.root, args.splits, backgrounds=args.backgrounds)
    print(format_table(("split", "images", "person crops"),
                       [(s.split, s.images, s.crops) for s in stats]))
    print("Kolhatkar (2020): 16949 train / 3201 val crops")


if __name__ == "__main__":
    main()
