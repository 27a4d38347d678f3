#!/usr/bin/env python
"""Convert a timm MobileNet-v1 state dict (``mobilenetv1_100`` and its width variants, timm
1.0's EfficientNet-builder implementation) into a detectron2 checkpoint for
``panext_d2.modeling.backbone.mobilenet_v1.MobileNetV1``.

timm names -> ours (``n`` counts the depthwise-separable blocks in order, 1..13):

    conv_stem.weight              -> conv0.weight
    bn1.*                         -> conv0.norm.*
    blocks.<s>.<j>.conv_dw.weight -> conv<n>.depthwise.weight
    blocks.<s>.<j>.bn1.*          -> conv<n>.depthwise.norm.*
    blocks.<s>.<j>.conv_pw.weight -> conv<n>.pointwise.weight
    blocks.<s>.<j>.bn2.*          -> conv<n>.pointwise.norm.*

The classifier and ``num_batches_tracked`` are dropped. timm's model uses ReLU6 and BN eps
1e-5, our defaults (MODEL.MOBILENET.ACTIVATION / BN_EPS). Nothing is downloaded: the input
is a file on disk (``torch.save(timm_model.state_dict(), path)`` or a ``.safetensors``).

Usage:
    python tools/convert_mobilenet_v1_weights.py mobilenetv1_100.pth out.pth [--prefix backbone.]
then ``MODEL.WEIGHTS out.pth``. The default prefix ``backbone.`` fits the SSD
meta-architecture (and any detectron2 model whose backbone attribute is ``backbone``).
"""

import argparse
import re
import sys
from collections import OrderedDict
from typing import Dict, Tuple

import torch

_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(conv_dw|bn1|conv_pw|bn2)\.(.+)$")
_BLOCK_PART = {
    "conv_dw": "depthwise",
    "bn1": "depthwise.norm",
    "conv_pw": "pointwise",
    "bn2": "pointwise.norm",
}


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def convert_timm_mobilenet_v1(
    state_dict: Dict[str, torch.Tensor], prefix: str = "backbone."
) -> Tuple["OrderedDict[str, torch.Tensor]", list]:
    """Returns (converted state dict, dropped timm keys)."""
    blocks = sorted(
        {(int(m.group(1)), int(m.group(2))) for m in map(_BLOCK.match, state_dict) if m}
    )
    block_number = {sj: n + 1 for n, sj in enumerate(blocks)}
    converted, dropped = OrderedDict(), []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            dropped.append(key)
            continue
        match = _BLOCK.match(key)
        if match:
            n = block_number[(int(match.group(1)), int(match.group(2)))]
            new = f"conv{n}.{_BLOCK_PART[match.group(3)]}.{match.group(4)}"
        elif key == "conv_stem.weight":
            new = "conv0.weight"
        elif key.startswith("bn1."):
            new = "conv0.norm." + key[len("bn1.") :]
        else:
            dropped.append(key)
            continue
        converted[prefix + new] = value.detach().clone()
    if "conv0.weight" not in {k[len(prefix) :] for k in converted}:
        raise ValueError("not a timm MobileNet-v1 state dict: no conv_stem.weight")
    return converted, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="timm state dict (.pth / .pt / .bin / .safetensors)")
    parser.add_argument("output", help="detectron2 checkpoint to write (.pth)")
    parser.add_argument("--prefix", default="backbone.", help="prefix of the converted keys")
    args = parser.parse_args(argv)
    converted, dropped = convert_timm_mobilenet_v1(load_state_dict(args.source), args.prefix)
    torch.save(
        {
            "model": converted,
            "__author__": "timm (converted by panext_d2)",
            "matching_heuristics": False,
        },
        args.output,
    )
    print(
        f"wrote {len(converted)} tensors to {args.output}; dropped {len(dropped)}: "
        f"{sorted(k for k in dropped if not k.endswith('num_batches_tracked'))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
