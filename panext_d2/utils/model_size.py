"""Model size: parameters and FLOPs.

* parameters: ``trainable`` counts parameters with ``requires_grad``; ``trainable_plus_bn_stats``
  adds the running mean and variance of every BatchNorm (``FrozenBatchNorm2d`` included), which
  is what TensorFlow's variable count reports for a model with trainable BatchNorms (the
  parameter tables of Kolhatkar (2020) are TensorFlow counts, docs/DESIGN.md §2.2);
* FLOPs: fvcore's count on one input, where a fused multiply-add counts as one flop; operators
  fvcore has no formula for are listed, not guessed.
"""
import logging
import warnings
from typing import Dict, List

import torch
from torch import nn

from .batchnorm import is_foldable_bn

logger = logging.getLogger(__name__)

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
