"""Measuring a model of a config: every figure of ``tools/benchmark.py`` for one model, and
the training iteration time. What each figure is: :mod:`panext_d2.utils.model_size`,
:mod:`panext_d2.utils.timing`, :mod:`panext_d2.utils.memory`. Run each model in its own
process (:func:`panext_d2.utils.isolation.run_isolated`) so that its memory figures and
allocator state are its own."""
import dataclasses
import gc
import time
from typing import Dict, List, Optional

import numpy as np
import torch

from ..utils.batchnorm import calibrate_batchnorm, fold_batchnorm
from ..utils.memory import PeakMemory, retain_freed_memory
from ..utils.model_inputs import benchmark_image, count_detections, make_inputs
from ..utils.model_size import count_flops, count_parameters
from ..utils.timing import model_device, progress_bar, synchronize, summarize_times, time_inference
from .checkpoint import SafeCheckpointer
from .trainer import Trainer


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
    options = options or BenchmarkOptions()
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)  # models without weights: the same random ones every run
    model = Trainer.build_model(cfg)
    if weights:
        SafeCheckpointer(model).load(weights)
    model.eval()
    device = model_device(model)
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


def time_training(cfg, runs: int, warmup: int = 1, channels_last: bool = False,
                  progress: bool = False, desc: str = "train") -> Dict:
    """Seconds per training iteration (forward, backward, optimizer step) of a fresh model on
    batches of ``Trainer.build_train_loader(cfg)``; loading the batch is timed separately
    (``data_*``). Gradient accumulation and AMP are not applied."""
    model = Trainer.build_model(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = Trainer.build_optimizer(cfg, model)
    device = model_device(model)
    loader = iter(Trainer.build_train_loader(cfg))
    step_times, data_times = [], []
    for i in progress_bar(range(warmup + runs), desc, progress):
        start = time.perf_counter()
        batch = next(loader)
        loaded = time.perf_counter()
        losses = model(batch)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if i >= warmup:
            data_times.append(loaded - start)
            step_times.append(time.perf_counter() - loaded)
    del loader
    stats = summarize_times(step_times)
    stats["data_median"] = float(np.median(data_times))
    stats["images_per_iter"] = int(cfg.SOLVER.IMS_PER_BATCH)
    return stats


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
