#!/usr/bin/env python
"""Render a model's predictions (panoptic > instances > semantic, whichever it returns).

    demo/demo.py --config-file CFG --input img.jpg folder/ 'glob/*.png' --output OUT \
        [--confidence-threshold 0.5] [--opts MODEL.WEIGHTS model.pth ...]
    demo/demo.py --config-file CFG --input video.mp4 --output OUT          # OUT/video.mp4
    demo/demo.py --config-file CFG --dataset synthetic_panoptic_val_separated \
        --max-images 8 --output OUT --opts MODEL.WEIGHTS model_final.pth

Images are written as OUT/<image stem>.png at the input's size. Class names come from the
metadata of ``--dataset`` or else of ``DATASETS.TEST[0]``.
"""
import argparse
import os
import sys

import cv2
import tqdm

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))
sys.path.insert(0, _HERE)

from detectron2.utils.logger import setup_logger  # noqa: E402

from panext_d2 import get_panext_cfg  # noqa: E402
from predictor import (  # noqa: E402
    VisualizationDemo,
    dataset_images,
    expand_inputs,
    is_video,
    read_bgr,
)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", nargs="+", help="images, folders, glob patterns, or one video")
    src.add_argument("--dataset", help="render images of this registered dataset")
    p.add_argument("--max-images", type=int, default=None, help="with --dataset: the first K")
    p.add_argument("--output", required=True, help="folder to write renderings to")
    p.add_argument("--confidence-threshold", type=float, default=0.5)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE config overrides, e.g. MODEL.WEIGHTS model.pth")
    return p


def _unique_path(folder: str, stem: str, ext: str, used: set) -> str:
    name, i = stem, 1
    while name in used:
        i += 1
        name = f"{stem}_{i}"
    used.add(name)
    return os.path.join(folder, name + ext)


def render_video(demo: VisualizationDemo, path: str, output_dir: str) -> str:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"cannot open video: {path}")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    out_path = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".mp4")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in tqdm.tqdm(demo.run_on_video(capture), total=frames, desc="frames"):
            writer.write(frame)
    finally:
        writer.release()
        capture.release()
    return out_path


def main(argv=None):
    args = build_parser().parse_args(argv)
    if len(args.opts) % 2:
        raise SystemExit("--opts takes KEY VALUE pairs")
    logger = setup_logger(name="demo")
    cfg = get_panext_cfg(args.config_file, args.opts)
    cfg.freeze()

    if args.dataset:
        files = dataset_images(args.dataset, args.max_images)
    else:
        files = expand_inputs(args.input)
    demo = VisualizationDemo(cfg, args.dataset, args.confidence_threshold)
    os.makedirs(args.output, exist_ok=True)

    written, used, skipped = [], set(), []
    for path in tqdm.tqdm(files, desc="images", disable=len(files) < 2):
        if is_video(path):
            written.append(render_video(demo, path, args.output))
            continue
        try:
            image = read_bgr(path)
        except (OSError, ValueError) as error:
            if len(files) == 1:
                raise
            logger.error("skipped %s: %s", path, error)  # one bad file does not stop a folder
            skipped.append(path)
            continue
        _, rendered, kind = demo.run_on_image(image)
        stem = os.path.splitext(os.path.basename(path))[0]
        out_path = _unique_path(args.output, stem, ".png", used)
        if not cv2.imwrite(out_path, rendered):
            raise OSError(f"cannot write {out_path}")
        logger.info("%s: drew %s -> %s", path, kind, out_path)
        written.append(out_path)
    logger.info("wrote %d file(s) to %s", len(written), args.output)
    if skipped:
        logger.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(skipped))
    return written


if __name__ == "__main__":
    main()
