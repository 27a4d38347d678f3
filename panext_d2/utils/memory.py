"""Peak memory of an inference, and the allocator setting that keeps freed memory.

* on GPU ``torch.cuda.max_memory_allocated`` (the weights included) and its increase over the
  allocation before inference; on CPU the process' resident-set high water mark (``VmHWM``,
  reset through ``/proc/self/clear_refs``) and its increase over the resident set before
  inference. Freed memory that the allocator keeps from an earlier model is reused without
  raising the resident set, so models compared in one process under-report:
  :func:`panext_d2.utils.isolation.run_isolated` runs each one in a fresh interpreter;
* by default glibc hands large freed blocks back to the kernel, so every inference pages its
  buffers in afresh; on machines where that is slow (this project's VMs: a third of a small
  model's latency, and the run-to-run spread) :func:`retain_freed_memory` keeps freed memory
  in the process (what a jemalloc / tcmalloc deployment does). The setting is process-wide
  and stays.
"""
import ctypes
import ctypes.util
import gc
import resource
from typing import Dict, Optional

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

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
