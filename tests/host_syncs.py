"""Counting, on any device, the calls that make the host wait for a CUDA device: reading a
value back (``item``, ``tolist``, ``int()`` / ``float()`` / ``bool()`` of a tensor) and ops
whose output size depends on the data (``nonzero``, boolean-mask indexing, ``unique``,
``bincount``, ``masked_select``, ``repeat_interleave`` with tensor repeats). Python-level
calls are seen through a TorchFunctionMode; calls made inside C++ kernels are not."""
import collections
import contextlib

import torch
from torch.overrides import TorchFunctionMode

_READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__"}
_DATA_SIZED = {"nonzero", "argwhere", "unique", "unique_consecutive", "bincount", "masked_select"}


def _is_bool_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _SyncCounter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _READS or name in _DATA_SIZED:
            self.counts[name] += 1
        elif name in ("__getitem__", "__setitem__") and _is_bool_mask(args[1]):
            self.counts[f"{name}[bool]"] += 1
        elif name == "repeat_interleave" and isinstance(kwargs.get("repeats", args[1] if len(args) > 1 else None), torch.Tensor):
            self.counts[name] += 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def count_host_syncs():
    """``with count_host_syncs() as counts: ...``; then ``sum(counts.values())``."""
    counter = _SyncCounter()
    with counter:
        yield counter.counts
