"""Inference latency: batch 1, ``torch.inference_mode()``, warm-up runs first, wall clock per
run with ``torch.cuda.synchronize()`` on GPU."""
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def progress_bar(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def time_inference(model: nn.Module, inputs: List[Dict], runs: int, warmup: int = 0,
                   device: Optional[torch.device] = None, progress: bool = False,
                   desc: str = "inference") -> List[float]:
    """Seconds per ``model(inputs)`` call for ``runs`` timed calls after ``warmup`` untimed ones,
    in eval mode and ``torch.inference_mode()``."""
    device = torch.device(device) if device is not None else model_device(model)
    model.eval()
    times = []
    with torch.inference_mode():
        for _ in progress_bar(range(warmup), f"{desc} warm-up", progress):
            model(inputs)
        synchronize(device)
        for _ in progress_bar(range(runs), desc, progress):
            start = time.perf_counter()
            model(inputs)
            synchronize(device)
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
