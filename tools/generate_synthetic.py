#!/usr/bin/env python
"""Generate the synthetic sets into a folder and print summary statistics.

The folders are the ones the registered datasets use when ``--output-dir`` is the cache root
(default ``$PANEXT_D2_CACHE`` or ``~/.cache/panext_d2``); an existing folder is reused.

    python tools/generate_synthetic.py --set all
    python tools/generate_synthetic.py --set sparse --empty-share 0.9 --output-dir /tmp/sparse90
"""

import argparse
import json
import logging
import time
from collections import Counter
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from panext_d2.data.catalog.synthetic import DEFAULT_SPLITS, instances, panoptic, sparse_semantic
from panext_d2.data.catalog.synthetic.cache import dataset_dir, ensure_generated

SETS = {
    "panoptic": (panoptic, panoptic.PanopticParams),
    "instances": (instances, instances.InstancesParams),
    "sparse": (sparse_semantic, sparse_semantic.SparseParams),
}
COCO_SMALL, COCO_MEDIUM = 32**2, 96**2


def _load(folder: Path, name: str):
    with open(folder / name) as f:
        return json.load(f)


def summarize_panoptic(folder: Path) -> dict:
    data = _load(folder, "panoptic.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    isthing = {c["id"]: c["isthing"] for c in data["categories"]}
    segments = [s for a in data["annotations"] for s in a["segments_info"]]
    things = [
        sum(isthing[s["category_id"]] for s in a["segments_info"]) for a in data["annotations"]
    ]
    pixels = sum(img["height"] * img["width"] for img in data["images"])
    return {
        "images": len(data["images"]),
        "things per image (min/mean/max)": f"{min(things)}/{np.mean(things):.2f}/{max(things)}",
        "segments per category": dict(Counter(names[s["category_id"]] for s in segments)),
        "void pixel share": round(1 - sum(s["area"] for s in segments) / pixels, 4),
    }


def summarize_instances(folder: Path) -> dict:
    data = _load(folder, "instances.json")
    areas = np.array([a["area"] for a in data["annotations"]])
    with_person = {a["image_id"] for a in data["annotations"]}
    return {
        "images": len(data["images"]),
        "images without person": len(data["images"]) - len(with_person),
        "persons": len(areas),
        "small/medium/large (COCO areas)": "/".join(
            str(int(n))
            for n in (
                (areas < COCO_SMALL).sum(),
                ((areas >= COCO_SMALL) & (areas < COCO_MEDIUM)).sum(),
                (areas >= COCO_MEDIUM).sum(),
            )
        ),
    }


def summarize_sparse(folder: Path) -> dict:
    index = _load(folder, "index.json")
    records = index["images"]
    non_empty = [r for r in records if r["foreground_classes"]]
    fg = [
        (np.asarray(Image.open(folder / "semantic" / r["sem_seg_file_name"])) > 0).mean()
        for r in non_empty
    ]
    per_class = Counter(index["classes"][c] for r in records for c in r["foreground_classes"])
    return {
        "images": len(records),
        "empty share": round(1 - len(non_empty) / len(records), 4),
        "images per foreground class": dict(per_class),
        "foreground pixel share on non-empty images": round(float(np.mean(fg)) if fg else 0.0, 5),
    }


SUMMARIES = {
    "panoptic": summarize_panoptic,
    "instances": summarize_instances,
    "sparse": summarize_sparse,
}


def _params(set_name: str, split: str, args):
    """Default split parameters, overridden by the options given on the command line."""
    values = dict(DEFAULT_SPLITS[f"synthetic_{set_name}_{split}"][1])
    for key in ("num_images", "image_size", "seed"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if set_name == "sparse":
        for key in ("empty_share", "num_classes"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
    return SETS[set_name][1](**values)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--split", choices=["train", "val", "both"], default="both")
    parser.add_argument("--output-dir", help="root folder (default: the dataset cache)")
    parser.add_argument("--num-images", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--empty-share", type=float, help="sparse set only")
    parser.add_argument("--num-classes", type=int, help="sparse set only (1 or 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    set_names = list(SETS) if args.set == "all" else [args.set]
    splits = ["train", "val"] if args.split == "both" else [args.split]
    for set_name in set_names:
        module = SETS[set_name][0]
        for split in splits:
            params = _params(set_name, split, args)
            folder = dataset_dir(module.KIND, asdict(params), args.output_dir)
            start = time.perf_counter()
            ensure_generated(folder, partial(module.generate, params))
            print(f"\n{set_name}/{split}: {folder} ({time.perf_counter() - start:.1f} s)")
            for key, value in SUMMARIES[set_name](folder).items():
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
