#!/usr/bin/env python
"""Build coco_person and coco_isb_shapes (Kolhatkar (2020) §5.1.2) from coco/annotations.

Writes coco_person/annotations/instances_{split}2017.json and
coco_isb_shapes/annotations/instances[_matched]_{split}2017.json under --root, and prints
the image counts and the Table 5.1-style shape distribution of the person boxes.
"""
import argparse

from panext_d2.data.builders.coco_person import SPLITS, build_coco_person, format_coco_person
from panext_d2.data.builders.common import add_root_argument

THESIS_COUNTS = ("Kolhatkar (2020): coco_person 64116 / 2693 images, coco_isb_shapes 30545 / 1284 "
               "images (train / val)")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_root_argument(parser)
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    args = parser.parse_args()
    print(format_coco_person(build_coco_person(args.root, args.splits)))
    print(THESIS_COUNTS)


if __name__ == "__main__":
    main()
