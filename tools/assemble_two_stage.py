#!/usr/bin/env python
"""Assemble the checkpoint of a two-stage pipeline (TwoStageSegmentor) from the checkpoints
of its separately trained image classifier and segmenter: their model weights under the
prefixes ``classifier.`` and ``segmenter.``, loaded by MODEL.WEIGHTS like any checkpoint.

    python tools/assemble_two_stage.py --classifier CLS.pth --segmenter SEG.pth --output OUT.pth
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from panext_d2.engine.checkpoint import CheckpointReadError, atomic_write  # noqa: E402


def model_weights(path: str) -> dict:
    """The ``model`` state dict of a detectron2 checkpoint, errors naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointReadError(f"checkpoint {path} cannot be read ({error})") from error
    return data.get("model", data)


def assemble(classifier: str, segmenter: str, output: str) -> dict:
    weights = {f"classifier.{k}": v for k, v in model_weights(classifier).items()}
    weights.update({f"segmenter.{k}": v for k, v in model_weights(segmenter).items()})
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_write(output, lambda f: torch.save({"model": weights}, f))
    return weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="checkpoint of the ImageClassifier")
    parser.add_argument("--segmenter", required=True, help="checkpoint of the segmenter")
    parser.add_argument("--output", required=True, help="two-stage checkpoint to write")
    args = parser.parse_args(argv)
    weights = assemble(args.classifier, args.segmenter, args.output)
    print(f"wrote {args.output}: {len(weights)} tensors")


if __name__ == "__main__":
    main()
