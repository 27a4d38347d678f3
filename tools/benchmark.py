#!/usr/bin/env python
"""Compare models: parameters, FLOPs, inference latency, throughput, peak memory and, optionally,
training iteration time, as one table with ratios to the first model, and as JSON.

    tools/benchmark.py --config-file a.yaml [--weights a.pth] --config-file b.yaml \
        [--runs 50 --warmup 5 --height 640 --width 640 --threads 2 --batch-size 1] \
        [--fold-bn] [--channels-last] [--calibrate-bn] [--train-iters 10] \
        [--output results.json] \
        [--opts KEY VALUE ...]
    tools/benchmark.py a.yaml:a.pth b.yaml --runs 5

Each model's name is its config file's stem. With several models each is measured in a fresh
interpreter (``--no-isolate`` to turn off) so that one model's memory peak and allocator
caches do not hide the next one's. See panext_d2/utils/benchmark.py for what each figure is.
"""
import argparse
import dataclasses
import json
import os
import sys
from collections import Counter

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from panext_d2 import get_panext_cfg  # noqa: E402
from panext_d2.utils.benchmark import (  # noqa: E402
    BenchmarkOptions,
    add_ratios,
    benchmark_model,
    format_table,
    machine_info,
    run_isolated,
)


class _ConfigAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        namespace.models.append({"config_file": value, "weights": None})


class _WeightsAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        if not namespace.models or namespace.models[-1]["weights"] is not None:
            parser.error("--weights must follow the --config-file it belongs to")
        namespace.models[-1]["weights"] = value


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(models=[])
    p.add_argument("specs", nargs="*", metavar="CONFIG[:WEIGHTS]", help="models to compare")
    p.add_argument("--config-file", action=_ConfigAction, metavar="FILE")
    p.add_argument("--weights", action=_WeightsAction, metavar="FILE",
                   help="weights of the preceding --config-file (default: its MODEL.WEIGHTS)")
    p.add_argument("--height", type=int, default=640)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--image", help="image resized to HEIGHTxWIDTH (default: uniform noise)")
    p.add_argument("--runs", type=int, default=50, help="timed inference runs")
    p.add_argument("--warmup", type=int, default=5, help="untimed inference runs first")
    p.add_argument("--batch-size", type=int, default=1, help="> 1: throughput at this batch size")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into convolutions")
    p.add_argument("--calibrate-bn", action="store_true",
                   help="set BatchNorm statistics from the benchmark image first (randomly "
                        "initialised models: activations at a trained model's scale)")
    p.add_argument("--retain-memory", action="store_true",
                   help="keep freed memory in the process from the timed runs on (glibc mallopt; "
                        "process-wide, so use it with the default isolation): times compute, "
                        "not the kernel paging buffers in afresh")
    p.add_argument("--no-flops", action="store_true", help="skip the fvcore FLOP count")
    p.add_argument("--train-iters", type=int, default=0,
                   help="also time N training iterations on the config's train loader")
    p.add_argument("--train-warmup", type=int, default=1)
    p.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                   help="each model in a fresh interpreter (default with several models)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false")
    p.add_argument("--output", help="write every figure as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE config overrides applied to every model (last argument)")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for spec in args.specs:
        config, _, weights = spec.partition(":")
        args.models.append({"config_file": config, "weights": weights or None})
    if not args.models:
        parser.error("give at least one model (--config-file or CONFIG[:WEIGHTS])")
    if len(args.opts) % 2:
        parser.error("--opts takes KEY VALUE pairs")
    for model in args.models:
        if not os.path.isfile(model["config_file"]):
            parser.error(f"config file not found: {model['config_file']}")
    if args.isolate is None:
        args.isolate = len(args.models) > 1
    return args


def model_names(models):
    """Config stems, with ``#2``, ``#3`` appended to repeated stems."""
    stems = [os.path.splitext(os.path.basename(m["config_file"]))[0] for m in models]
    counts, seen = Counter(stems), Counter()
    names = []
    for stem in stems:
        seen[stem] += 1
        names.append(stem if counts[stem] == 1 or seen[stem] == 1 else f"{stem}#{seen[stem]}")
    return names


def main(argv=None):
    args = parse_args(argv)
    options = BenchmarkOptions(
        height=args.height, width=args.width, runs=args.runs, warmup=args.warmup,
        batch_size=args.batch_size, threads=args.threads, image=args.image,
        channels_last=args.channels_last, fold_bn=args.fold_bn, calibrate_bn=args.calibrate_bn,
        retain_memory=args.retain_memory,
        flops=not args.no_flops,
        train_iters=args.train_iters, train_warmup=args.train_warmup,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if args.threads:
        torch.set_num_threads(args.threads)

    results = []
    for name, model in zip(model_names(args.models), args.models):
        cfg = get_panext_cfg(model["config_file"], args.opts)
        cfg.freeze()
        print(f"[benchmark] {name}: {model['config_file']}", file=sys.stderr, flush=True)
        if args.isolate:
            result = run_isolated(benchmark_model, cfg, name, model["weights"], options)
        else:
            result = benchmark_model(cfg, name, model["weights"], options)
        result["config_file"] = model["config_file"]
        results.append(result)
    add_ratios(results)

    print(format_table(results))
    report = {
        "machine": machine_info(results[0]["device"]),
        "isolated": args.isolate,
        "opts": list(args.opts),
        "options": dataclasses.asdict(options),
        "results": results,
    }
    if options.threads:
        report["machine"]["torch_threads"] = options.threads
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
        print(f"[benchmark] wrote {args.output}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
