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
caches do not hide the next one's. See panext_d2/engine/benchmark.py for what each figure is.
"""
import argparse
import dataclasses
import json
import os
import platform
import sys
from collections import Counter
from typing import Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from panext_d2 import get_panext_cfg  # noqa: E402
from panext_d2.engine.benchmark import BenchmarkOptions, benchmark_model  # noqa: E402
from panext_d2.utils.isolation import run_isolated  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device="cpu") -> Dict:
    """CPU model and count, torch threads, library versions, and the device measured on."""
    import detectron2

    device = torch.device(device)
    info = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "detectron2_version": detectron2.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def add_ratios(results: List[Dict]) -> List[Dict]:
    """Set ``result["ratios"][metric] = value / first model's value`` (None where undefined)."""
    if not results:
        return results
    reference = results[0]["metrics"]
    for result in results:
        ratios = {}
        for key, value in result["metrics"].items():
            ref = reference.get(key)
            ratios[key] = value / ref if value is not None and ref else None
        result["ratios"] = ratios
    return results


def _fmt(value, ratio, spec: str, unit: str = "") -> str:
    if value is None:
        return "n/a"
    text = format(value, spec) + unit
    return f"{text} ({ratio:.2f}x)" if ratio is not None else text


def format_table(results: List[Dict]) -> str:
    """One table, a row per model, every figure followed by its ratio to the first model."""
    from tabulate import tabulate

    headers = ["model", "params (M)", "params+BN stats (M)", "GFLOPs", "latency (ms)",
               "p10-p90 (ms)", "throughput (img/s)", "peak mem (MiB)", "train iter (s)",
               "detections"]
    rows = []
    for r in results:
        m, q = r["metrics"], r.get("ratios", {})
        lat = r["latency_s"]
        mem = m["peak_memory_delta_bytes"]
        rows.append([
            r["name"],
            _fmt(m["params_trainable"] / 1e6, q.get("params_trainable"), ".2f"),
            _fmt(m["params_trainable_plus_bn_stats"] / 1e6,
                 q.get("params_trainable_plus_bn_stats"), ".2f"),
            _fmt(m["gflops"], q.get("gflops"), ".2f"),
            _fmt(m["latency_median_s"] * 1e3, q.get("latency_median_s"), ".1f"),
            f"{lat['p10'] * 1e3:.1f}-{lat['p90'] * 1e3:.1f}",
            _fmt(m["throughput_images_per_s"], q.get("throughput_images_per_s"), ".2f"),
            _fmt(mem / 2**20 if mem is not None else None, q.get("peak_memory_delta_bytes"), ".1f"),
            _fmt(m["train_iter_median_s"], q.get("train_iter_median_s"), ".3f"),
            _fmt(r.get("detections_per_image"), None, ".0f"),
        ])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


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
