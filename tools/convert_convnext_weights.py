#!/usr/bin/env python
"""Convert an ImageNet ConvNeXt checkpoint on disk into a detectron2 checkpoint for
panext_d2's ConvNeXt / PaNeXt-e backbones (load it with ``MODEL.WEIGHTS``).

Accepted inputs (``.pth`` / ``.bin`` via torch.load, ``.safetensors``):
  * timm: ``timm.create_model("convnext_tiny").state_dict()``, bare or under "state_dict" /
    "model" (keys ``stem.0.weight``, ``stages.0.blocks.0.mlp.fc1.weight``, ...);
  * official facebookresearch/ConvNeXt: ``{"model": ...}`` with keys
    ``downsample_layers.*``, ``stages.{i}.{j}.dwconv/pwconv1/pwconv2/gamma``, ``norm``, ``head``.

The classifier (timm ``head.*``; official ``norm.*``, ``head.*``) is dropped. Output keys are
timm's with ``--prefix`` in front: ``backbone.bottom_up.`` (default) for the FPN builders
(build_convnext_fpn_backbone, build_panext_e_fpn_backbone), ``backbone.`` for the bare
backbone builders. PaNeXt-e loads every key; its extra ``mlp.fc_mid`` layers have no
pretrained weights and keep their initialisation (DetectionCheckpointer logs them as missing).

    python tools/convert_convnext_weights.py convnext_tiny.pth convnext_tiny_d2.pth
"""
import argparse
import re
import sys

import torch

# Official name -> timm name, applied in order.
_OFFICIAL_TO_TIMM = (
    (re.compile(r"^downsample_layers\.0\."), "stem."),
    (re.compile(r"^downsample_layers\.(\d+)\."), r"stages.\1.downsample."),
    (re.compile(r"^stages\.(\d+)\.(\d+)\."), r"stages.\1.blocks.\2."),
    (re.compile(r"\.dwconv\."), ".conv_dw."),
    (re.compile(r"\.pwconv(\d)\."), r".mlp.fc\1."),
)
_CLASSIFIER = re.compile(r"^(head|norm)\.")


def load_state_dict(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("model", "state_dict"):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], dict):
            return checkpoint[wrapper]
    return checkpoint


def to_timm_names(state_dict: dict) -> dict:
    """Backbone weights under timm's names, classifier dropped."""
    official = any(k.startswith("downsample_layers.") for k in state_dict)
    out = {}
    for name, tensor in state_dict.items():
        if _CLASSIFIER.match(name):
            continue
        if official:
            for pattern, replacement in _OFFICIAL_TO_TIMM:
                name = pattern.sub(replacement, name)
        out[name] = tensor
    return out


def convert(state_dict: dict, prefix: str = "backbone.bottom_up.") -> dict:
    """The detectron2 checkpoint ``{"model", "__author__", "matching_heuristics": False}``,
    with ``prefix`` in front of every timm name."""
    model = {prefix + k: v.detach().clone() for k, v in to_timm_names(state_dict).items()}
    return {"model": model, "__author__": "timm ConvNeXt", "matching_heuristics": False}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "input", help="timm or official ConvNeXt checkpoint (.pth/.bin/.safetensors)"
    )
    parser.add_argument("output", help="detectron2 checkpoint to write (.pth)")
    parser.add_argument(
        "--prefix",
        default="backbone.bottom_up.",
        help="prefix of the backbone in the model: 'backbone.bottom_up.' (FPN builders, "
        "default) or 'backbone.' (bare backbone builders)",
    )
    args = parser.parse_args(argv)
    checkpoint = convert(load_state_dict(args.input), args.prefix)
    torch.save(checkpoint, args.output)
    print(f"wrote {len(checkpoint['model'])} tensors to {args.output}")


if __name__ == "__main__":
    sys.exit(main())
