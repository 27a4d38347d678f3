"""Measuring models: parameters, FLOPs, inference latency and peak memory, training step time.

Used by ``tools/benchmark.py`` and ``tools/analyze_model.py``. Conventions:

* parameters: ``trainable`` counts parameters with ``requires_grad``; ``trainable_plus_bn_stats``
  adds the running mean and variance of every BatchNorm (``FrozenBatchNorm2d`` included), which
  is what TensorFlow's variable count reports for a model with trainable BatchNorms (the
  parameter tables of Kolhatkar (2020) are TensorFlow counts, docs/DESIGN.md §2.2);
* FLOPs: fvcore's count on one input, where a fused multiply-add counts as one flop; operators
  fvcore has no formula for are listed, not guessed;
* latency: batch 1, ``torch.inference_mode()``, warm-up runs first, wall clock per run with
  ``torch.cuda.synchronize()`` on GPU; throughput from a separate loop when the batch size is > 1;
* peak memory during inference: on GPU ``torch.cuda.max_memory_allocated`` (the weights included)
  and its increase over the allocation before inference; on CPU the process' resident-set high
  water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) and its increase over the
  resident set before inference. Freed memory that the allocator keeps from an earlier model is
  reused without raising the resident set, so models compared in one process under-report:
  :func:`run_isolated` runs each one in a fresh interpreter;
* allocator: by default glibc hands large freed blocks back to the kernel, so every inference
  pages its buffers in afresh; on machines where that is slow (this project's VMs: a third of
  a small model's latency, and the run-to-run spread) ``retain_memory`` keeps freed memory in
  the process (:func:`retain_freed_memory`, what a jemalloc / tcmalloc deployment does)
  from the timed runs on. The setting is process-wide and stays: whatever the process
  measures afterwards (training iterations, further models with ``--no-isolate``) runs with
  it too. Peak memory is always measured on one inference before the timed runs.
"""
import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import multiprocessing
import os
import platform
import resource
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .fuse import fold_batchnorm, is_foldable_bn

logger = logging.getLogger(__name__)

__all__ = [
    "BenchmarkOptions",
    "PeakMemory",
    "add_ratios",
    "benchmark_model",
    "count_flops",
    "calibrate_batchnorm",
    "count_detections",
    "count_parameters",
    "format_table",
    "machine_info",
    "make_inputs",
    "parameter_table",
    "retain_freed_memory",
    "run_isolated",
    "summarize_times",
    "benchmark_image",
    "time_inference",
    "time_training",
]


# ----------------------------------------------------------------------------- parameters
def _bn_stat_count(module: nn.Module) -> int:
    if not is_foldable_bn(module):
        return 0
    return module.running_mean.numel() + module.running_var.numel()


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """``trainable``, ``total`` (frozen ones included), ``bn_stats`` (BatchNorm running mean and
    variance) and ``trainable_plus_bn_stats``, the TensorFlow-comparable count."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    bn_stats = sum(_bn_stat_count(m) for m in model.modules())
    return {
        "trainable": trainable,
        "total": total,
        "bn_stats": bn_stats,
        "trainable_plus_bn_stats": trainable + bn_stats,
    }


def parameter_table(model: nn.Module, max_depth: int = 3) -> List[Dict]:
    """Rows ``{"name", "depth", "parameters", "trainable"}`` for the model ("" is the whole
    model, depth 0) and every submodule down to ``max_depth``, counting each parameter under
    every prefix of its name (shared parameters once)."""
    totals: Dict[str, List[int]] = {}
    for name, param in model.named_parameters():
        parts = name.split(".")[:-1]
        prefixes = [""] + [".".join(parts[: i + 1]) for i in range(min(len(parts), max_depth))]
        for prefix in prefixes:
            entry = totals.setdefault(prefix, [0, 0])
            entry[0] += param.numel()
            entry[1] += param.numel() if param.requires_grad else 0
    return [
        {"name": name, "depth": 0 if not name else name.count(".") + 1,
         "parameters": count, "trainable": trainable}
        for name, (count, trainable) in totals.items()
    ]


# ----------------------------------------------------------------------------- inputs
def benchmark_image(height: int, width: int, path: Optional[str] = None, fmt: str = "BGR",
               seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 image: the file at ``path`` (in ``fmt``) resized to (height, width), or
    uniform noise from a fixed seed."""
    if path is None:
        return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    import cv2
    from detectron2.data.detection_utils import read_image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    image = read_image(path, format=fmt)
    return np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))


def make_inputs(image: np.ndarray, batch_size: int = 1, channels_last: bool = False) -> List[Dict]:
    """detectron2 model inputs: ``batch_size`` dicts with a CHW uint8 ``image`` and the
    ``height``/``width`` to report outputs at. With ``channels_last`` the CHW tensor is a view
    of the HWC array (channels-last strides) instead of a contiguous copy."""
    height, width = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if not channels_last:
        tensor = tensor.contiguous()
    return [{"image": tensor, "height": height, "width": width} for _ in range(batch_size)]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: List[Dict]) -> int:
    """Set the statistics of every BatchNorm (``FrozenBatchNorm2d`` included) to the mean and
    variance of its own input during one inference forward on ``inputs``; returns how many
    were set.

    A randomly initialised network whose BatchNorms still hold their initial statistics
    (mean 0, variance 1) passes activations that grow or shrink layer after layer (1e-24 at
    the end of MobileNet-v1 with TF's initialisation; exploding through ResNet-50): its
    detections are degenerate (Mask R-CNN keeps no proposal at all) and its arithmetic can
    run into denormals, neither of which a trained model meets. Calibrated statistics give
    each layer the unit scale of a trained model. Models that fold their BatchNorms lazily
    at inference (``fold_bn_test``, e.g. SSD) run their own modules for the calibration.
    """
    norms = [m for m in model.modules() if is_foldable_bn(m)]
    lazy_folding = [m for m in model.modules() if getattr(m, "fold_bn_test", False)]

    def set_statistics(module, args):
        x = args[0].float()
        module.running_mean.copy_(x.mean((0, 2, 3)))
        module.running_var.copy_(x.var((0, 2, 3), unbiased=False))

    handles = [m.register_forward_pre_hook(set_statistics) for m in norms]
    for m in lazy_folding:
        m.fold_bn_test = False
    model.eval()
    try:
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        for m in lazy_folding:
            m.fold_bn_test = True
        model.eval()  # drops any BatchNorm-folded copy made before
    return len(norms)


def count_detections(outputs: List[Dict]) -> Optional[float]:
    """Mean number of ``instances`` per image of a detectron2 model's outputs (None for
    models without instance outputs)."""
    counts = [len(o["instances"]) for o in outputs if isinstance(o, dict) and "instances" in o]
    return sum(counts) / len(counts) if counts else None


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def time_inference(model: nn.Module, inputs: List[Dict], runs: int, warmup: int = 0,
                   device: Optional[torch.device] = None, progress: bool = False,
                   desc: str = "inference") -> List[float]:
    """Seconds per ``model(inputs)`` call for ``runs`` timed calls after ``warmup`` untimed ones,
    in eval mode and ``torch.inference_mode()``."""
    device = torch.device(device) if device is not None else _model_device(model)
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in _progress(range(warmup), f"{desc} warm-up", progress):
            model(inputs)
        _sync(device)
        for _ in _progress(range(runs), desc, progress):
            start = time.perf_counter()
            model(inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
    return times


def summarize_times(times: Sequence[float]) -> Dict[str, float]:
    """median, mean, std, min, max, p10, p90, p25, p75 (seconds) and the number of runs."""
    t = np.asarray(times, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timings to summarize")
    p10, p25, p50, p75, p90 = np.percentile(t, [10, 25, 50, 75, 90])
    return {
        "runs": int(t.size), "median": float(p50), "mean": float(t.mean()),
        "std": float(t.std()), "min": float(t.min()), "max": float(t.max()),
        "p10": float(p10), "p90": float(p90), "p25": float(p25), "p75": float(p75),
    }


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------- memory
def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: peak memory of what runs inside, in bytes (see the module docstring).
    After exit, :attr:`result` holds ``peak_bytes``, ``baseline_bytes``, ``peak_delta_bytes``
    and ``method``."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.result: Dict = {}

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            self._method = "torch.cuda.max_memory_allocated"
        elif _reset_rss_peak() and _proc_status_kib("VmRSS") is not None:
            self._baseline = _proc_status_kib("VmRSS") * 1024
            self._method = "VmHWM (reset via /proc/self/clear_refs)"
        else:
            # ru_maxrss is the lifetime peak (KiB on Linux): the delta under-reports whenever
            # an earlier peak was higher; run_isolated avoids that.
            self._baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self._method = "ru_maxrss"
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._method == "ru_maxrss":
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            peak = _proc_status_kib("VmHWM") * 1024
        self.result = {
            "peak_bytes": int(peak),
            "baseline_bytes": int(self._baseline),
            "peak_delta_bytes": int(max(0, peak - self._baseline)),
            "method": self._method,
        }
        return False


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit


def retain_freed_memory() -> bool:
    """Make this process's glibc allocator keep the memory it frees: blocks up to 32 MiB come
    from the heap instead of fresh mappings, and the heap is never trimmed. Later
    allocations then reuse resident pages instead of faulting in new ones. Returns False
    (and changes nothing) where the C library has no ``mallopt`` or refuses the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    )


# ----------------------------------------------------------------------------- FLOPs
def count_flops(model: nn.Module, inputs: List[Dict], by_module: bool = False) -> Dict:
    """fvcore's FLOP count of ``model(inputs)`` through detectron2's tracing adapter.
    Returns ``gflops`` (None when tracing fails, with ``error``), ``unsupported_ops``
    ({operator: occurrences}) and, with ``by_module``, ``by_module`` ({module name as in
    ``model.named_modules()``: flops}, "" being the whole model)."""
    from detectron2.utils.analysis import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, inputs)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            result = {
                "gflops": analysis.total() / 1e9,
                "unsupported_ops": dict(analysis.unsupported_ops()),
            }
            if by_module:  # detectron2 wraps the model as ``.model`` of a tracing adapter
                result["by_module"] = {
                    name[len("model."):] if name.startswith("model.") else
                    ("" if name == "model" else name): flops
                    for name, flops in analysis.by_module().items() if name
                }
            return result
    except Exception as e:  # tracing can fail on data-dependent control flow
        logger.warning("FLOP count failed: %s: %s", type(e).__name__, e)
        return {"gflops": None, "unsupported_ops": {}, "error": f"{type(e).__name__}: {e}"}
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------- training
def time_training(cfg, runs: int, warmup: int = 1, channels_last: bool = False,
                  progress: bool = False, desc: str = "train") -> Dict:
    """Seconds per training iteration (forward, backward, optimizer step) of a fresh model on
    batches of ``Trainer.build_train_loader(cfg)``; loading the batch is timed separately
    (``data_*``). Gradient accumulation and AMP are not applied."""
    from ..engine import Trainer

    model = Trainer.build_model(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = Trainer.build_optimizer(cfg, model)
    device = _model_device(model)
    loader = iter(Trainer.build_train_loader(cfg))
    step_times, data_times = [], []
    for i in _progress(range(warmup + runs), desc, progress):
        start = time.perf_counter()
        batch = next(loader)
        loaded = time.perf_counter()
        losses = model(batch)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i >= warmup:
            data_times.append(loaded - start)
            step_times.append(time.perf_counter() - loaded)
    del loader
    stats = summarize_times(step_times)
    stats["data_median"] = float(np.median(data_times))
    stats["images_per_iter"] = int(cfg.SOLVER.IMS_PER_BATCH)
    return stats


# ----------------------------------------------------------------------------- machine
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


# ----------------------------------------------------------------------------- one model
@dataclasses.dataclass
class BenchmarkOptions:
    height: int = 640
    width: int = 640
    runs: int = 50
    warmup: int = 5
    batch_size: int = 1
    threads: Optional[int] = None
    image: Optional[str] = None
    channels_last: bool = False
    fold_bn: bool = False
    calibrate_bn: bool = False
    retain_memory: bool = False
    seed: int = 0
    flops: bool = True
    train_iters: int = 0
    train_warmup: int = 1
    progress: bool = False


def benchmark_model(cfg, name: str, weights: Optional[str] = None,
                    options: Optional[BenchmarkOptions] = None) -> Dict:
    """Every figure for the model of ``cfg``: parameters (as built), then with the options
    applied (``fold_bn``, ``channels_last``) latency, peak memory, throughput and FLOPs, and
    optionally training iteration time. Returns a JSON-serialisable dict."""
    from detectron2.checkpoint import DetectionCheckpointer

    from ..engine import Trainer

    options = options or BenchmarkOptions()
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)  # models without weights: the same random ones every run
    model = Trainer.build_model(cfg)
    if weights:
        DetectionCheckpointer(model).load(weights)
    model.eval()
    device = _model_device(model)
    params = count_parameters(model)

    image = benchmark_image(options.height, options.width, options.image, cfg.INPUT.FORMAT)
    inputs = make_inputs(image, 1, options.channels_last)
    calibrated = calibrate_batchnorm(model, inputs) if options.calibrate_bn else 0
    folded: List[str] = []
    if options.fold_bn:
        folded = fold_batchnorm(model, example_inputs=inputs)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)

    with PeakMemory(device) as memory:
        time_inference(model, inputs, 1, 0, device)
    retained = retain_freed_memory() if options.retain_memory else False
    times = time_inference(model, inputs, options.runs, options.warmup, device,
                           options.progress, f"{name} latency")
    latency = summarize_times(times)
    with torch.inference_mode():
        detections = count_detections(model(inputs))
    if options.batch_size > 1:
        batch = make_inputs(image, options.batch_size, options.channels_last)
        batch_times = time_inference(model, batch, options.runs, min(options.warmup, 1), device,
                                     options.progress, f"{name} throughput")
        throughput = options.batch_size / summarize_times(batch_times)["median"]
    else:
        throughput = 1.0 / latency["median"]

    flops = count_flops(model, inputs) if options.flops else {"gflops": None, "skipped": True}
    result = {
        "name": name,
        "weights": weights or cfg.MODEL.WEIGHTS or None,
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "device": str(device),
        "input": {"height": options.height, "width": options.width,
                  "image": options.image or "random", "batch_size": options.batch_size},
        "options": dataclasses.asdict(options),
        "calibrated_batchnorms": calibrated,
        "retained_freed_memory": retained,
        "folded_batchnorms": len(folded),
        "detections_per_image": detections,
        "parameters": params,
        "flops": flops,
        "latency_s": latency,
        "throughput_images_per_s": throughput,
        "memory": memory.result,
    }
    del model, inputs
    gc.collect()
    if options.train_iters > 0:
        result["train_iter_s"] = time_training(cfg, options.train_iters, options.train_warmup,
                                               options.channels_last, options.progress,
                                               f"{name} train")
    result["metrics"] = headline_metrics(result)
    return result


def headline_metrics(result: Dict) -> Dict[str, Optional[float]]:
    """The figures compared across models (and given ratios)."""
    train = result.get("train_iter_s")
    return {
        "params_trainable": result["parameters"]["trainable"],
        "params_trainable_plus_bn_stats": result["parameters"]["trainable_plus_bn_stats"],
        "gflops": result["flops"].get("gflops"),
        "latency_median_s": result["latency_s"]["median"],
        "throughput_images_per_s": result["throughput_images_per_s"],
        "peak_memory_delta_bytes": result["memory"]["peak_delta_bytes"],
        "train_iter_median_s": train["median"] if train else None,
    }


def _call(fn, args, kwargs):
    return fn(*args, **kwargs)


def run_isolated(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh spawned interpreter, so that its memory peak and
    allocator state are its own. ``fn`` and its arguments must be picklable."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_call, (fn, args, kwargs))


# ----------------------------------------------------------------------------- comparison
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
