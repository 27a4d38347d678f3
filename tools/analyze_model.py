#!/usr/bin/env python
"""Parameters per module, FLOPs per module, or the structure of a config's model.

    tools/analyze_model.py --config-file CFG --tasks parameter flop structure \
        [--max-depth 3] [--num-inputs 1] [--height 640 --width 640] [--opts KEY VALUE ...]

FLOPs are fvcore's (one multiply-add = one flop), averaged over ``--num-inputs`` images of the
test loader of DATASETS.TEST[0], or over uniform-noise images of HEIGHTxWIDTH when a size is
given or the config names no test set.
"""
import argparse
import os
import sys
from itertools import islice

from detectron2.checkpoint import DetectionCheckpointer
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from panext_d2 import Trainer, get_panext_cfg  # noqa: E402
from panext_d2.utils.model_inputs import benchmark_image, make_inputs  # noqa: E402
from panext_d2.utils.model_size import count_flops, count_parameters, parameter_table  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--tasks", nargs="+", required=True, choices=["parameter", "flop", "structure"])
    p.add_argument("--max-depth", type=int, default=3, help="deepest module level in tables")
    p.add_argument("--num-inputs", type=int, default=1, help="images the FLOPs average over")
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE config overrides")
    return p


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f}{unit}"
    return f"{n:g}"


def analysis_inputs(cfg, num_inputs: int, height=None, width=None):
    """``num_inputs`` single-image batches: from the test loader of DATASETS.TEST[0] unless a
    size is given or no test set is configured."""
    if height is None and width is None and len(cfg.DATASETS.TEST):
        loader = Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])
        return list(islice(loader, num_inputs))
    height, width = height or 640, width or 640
    return [make_inputs(benchmark_image(height, width, seed=i, fmt=cfg.INPUT.FORMAT))
            for i in range(num_inputs)]


def parameter_report(model, max_depth: int):
    """(table text, rows) of parameters per module down to ``max_depth``."""
    rows = parameter_table(model, max_depth)
    counts = count_parameters(model)
    body = [[r["name"] or "model", _human(r["parameters"]),
             _human(r["trainable"])] for r in rows]
    text = tabulate(body, headers=["module", "parameters", "trainable"], tablefmt="github",
                    disable_numparse=True)
    text += (f"\n\ntotal {counts['total']:,}  trainable {counts['trainable']:,}  "
             f"trainable + BatchNorm running statistics {counts['trainable_plus_bn_stats']:,}")
    return text, rows


def flop_report(model, inputs, max_depth: int):
    """(table text, {module: mean GFLOPs}) over the given batches."""
    totals, unsupported, errors = {}, {}, []
    for batch in inputs:
        result = count_flops(model, batch, by_module=True)
        if result["gflops"] is None:
            errors.append(result["error"])
            continue
        for name, flops in result["by_module"].items():
            totals[name] = totals.get(name, 0) + flops
        for op, n in result["unsupported_ops"].items():
            unsupported[op] = unsupported.get(op, 0) + n
    if not totals:
        raise RuntimeError(f"FLOP counting failed on every input: {errors}")
    done = len(inputs) - len(errors)
    order = [name for name, _ in model.named_modules()]
    mean = {name: totals[name] / done / 1e9 for name in order
            if name in totals and (not name or name.count(".") < max_depth)}
    body = [[n or "model", f"{g:.4f}"]
            for n, g in mean.items() if g > 0 or not n]
    text = tabulate(body, headers=["module", "GFLOPs"], tablefmt="github", disable_numparse=True)
    text += f"\n\naveraged over {done} input(s)"
    if unsupported:
        text += "; operators without a FLOP formula (not counted): " + ", ".join(
            f"{op} x{n}" for op, n in sorted(unsupported.items()))
    return text, mean


def main(argv=None):
    args = build_parser().parse_args(argv)
    cfg = get_panext_cfg(args.config_file, args.opts)
    cfg.freeze()
    model = Trainer.build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    report = {}
    if "parameter" in args.tasks:
        text, report["parameter"] = parameter_report(model, args.max_depth)
        print("Parameters per module:\n" + text + "\n")
    if "flop" in args.tasks:
        inputs = analysis_inputs(cfg, args.num_inputs, args.height, args.width)
        text, report["flop"] = flop_report(model, inputs, args.max_depth)
        print("FLOPs per module:\n" + text + "\n")
    if "structure" in args.tasks:
        report["structure"] = str(model)
        print("Model structure:\n" + report["structure"])
    return report


if __name__ == "__main__":
    main()
