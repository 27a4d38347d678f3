"""BatchNorm at inference: folding it into the convolution before it, and calibrating the
statistics of randomly initialised models (:func:`calibrate_batchnorm`).

A convolution ``y = W * x + b`` followed by an inference-mode BatchNorm
``z = gamma * (y - mean) / sqrt(var + eps) + beta`` is the single convolution with
``W' = W * s`` and ``b' = (b - mean) * s + beta``, where ``s = gamma / sqrt(var + eps)``
scales each output channel. Folding saves one pass over every such feature map.

Pairs are found three ways:

* detectron2 ``Conv2d`` modules whose ``norm`` is a BatchNorm (``BatchNorm2d``, ``SyncBatchNorm``,
  ``NaiveSyncBatchNorm``, ``FrozenBatchNorm2d``): the norm is folded and set to ``None``;
* a convolution immediately followed by a BatchNorm inside an ``nn.Sequential``;
* with ``example_inputs``, any other convolution whose output is consumed by a BatchNorm and by
  nothing else, found by running the model once and recording which module produced and which
  consumed each tensor (covers ``self.conv1`` / ``self.bn1`` attribute pairs).

Folded BatchNorm modules are replaced by ``nn.Identity``. Only call this on models used for
inference: the running statistics are baked into the weights, so training the result is not
training the original.
"""
from typing import Dict, List, Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.overrides import TorchFunctionMode

try:  # detectron2 is a dependency of the package, but keep this module usable alone
    from detectron2.layers import FrozenBatchNorm2d
except ImportError:  # pragma: no cover
    FrozenBatchNorm2d = ()

__all__ = ["fold_batchnorm", "fold_conv_bn_", "is_foldable_bn"]


def is_foldable_bn(module: nn.Module) -> bool:
    """A BatchNorm whose inference output is an affine map given by stored statistics."""
    if FrozenBatchNorm2d and isinstance(module, FrozenBatchNorm2d):
        return True
    return isinstance(module, _BatchNorm) and module.running_mean is not None


def _is_plain_conv(module: nn.Module) -> bool:
    """A non-transposed convolution whose forward output is the convolution alone (a
    detectron2 ``Conv2d`` with a norm or an activation is not)."""
    if not isinstance(module, _ConvNd) or module.transposed:
        return False
    return getattr(module, "norm", None) is None and getattr(module, "activation", None) is None


@torch.no_grad()
def fold_conv_bn_(conv: _ConvNd, bn: nn.Module) -> None:
    """Fold ``bn`` (applied right after ``conv``) into ``conv``'s weight and bias, in place."""
    if conv.out_channels != bn.running_mean.numel():
        raise ValueError(
            f"cannot fold a BatchNorm of {bn.running_mean.numel()} channels into a conv with "
            f"{conv.out_channels} output channels"
        )
    def double(t):
        return None if t is None else t.detach().double()

    # torch's own folding arithmetic, run in float64 so the fold adds no rounding of its own
    weight, bias = fuse_conv_bn_weights(
        double(conv.weight), double(conv.bias), double(bn.running_mean), double(bn.running_var),
        bn.eps, double(bn.weight), double(bn.bias),
    )
    dtype, requires_grad = conv.weight.dtype, conv.weight.requires_grad
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=requires_grad)
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=requires_grad)


# Tensor functions that read metadata only; they do not count as consuming a conv's output.
_METADATA_FUNCS = {
    "__get__", "dim", "ndimension", "size", "numel", "stride", "is_contiguous", "nelement",
    "element_size", "data_ptr", "get_device", "is_floating_point", "is_complex", "type",
}


class _ConsumerCounter(TorchFunctionMode):
    """Counts how many torch calls take each watched tensor as an argument."""

    def __init__(self):
        super().__init__()
        self.watched: Dict[int, torch.Tensor] = {}  # id -> tensor (kept alive: ids stay unique)
        self.uses: Dict[int, int] = {}

    def _visit(self, obj):
        if isinstance(obj, torch.Tensor):
            key = id(obj)
            if key in self.watched:
                self.uses[key] += 1
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self._visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                self._visit(item)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA_FUNCS:
            self._visit(args)
            self._visit(kwargs)
        return func(*args, **kwargs)


def _traced_pairs(model: nn.Module, example_inputs) -> List[Tuple[str, str]]:
    """(conv name, bn name) pairs where the BatchNorm's only input is the conv's output and
    that output is used by nothing else, observed on one forward pass."""
    names = {id(m): n for n, m in model.named_modules()}
    produced: Dict[int, str] = {}  # output tensor id -> conv name
    calls: Dict[str, int] = {}
    consumed: List[Tuple[str, int]] = []  # (bn name, input tensor id)
    counter = _ConsumerCounter()

    def conv_hook(module, inputs, output):
        name = names[id(module)]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(output, torch.Tensor):
            produced[id(output)] = name
            counter.watched[id(output)] = output
            counter.uses[id(output)] = 0

    def bn_hook(module, inputs):
        name = names[id(module)]
        calls[name] = calls.get(name, 0) + 1
        if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor):
            consumed.append((name, id(inputs[0])))

    handles = []
    for module in model.modules():
        if _is_plain_conv(module):
            handles.append(module.register_forward_hook(conv_hook))
        elif is_foldable_bn(module):
            handles.append(module.register_forward_pre_hook(bn_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(example_inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    pairs = []
    for bn_name, tensor_id in consumed:
        if tensor_id not in produced:
            continue
        conv_name = produced[tensor_id]
        if calls[conv_name] == 1 and calls[bn_name] == 1 and counter.uses[tensor_id] == 1:
            pairs.append((conv_name, bn_name))
    return pairs


def fold_batchnorm(model: nn.Module, example_inputs=None) -> List[str]:
    """Fold every BatchNorm that directly follows a convolution into it, in place.

    ``example_inputs`` (what ``model(...)`` takes) enables the traced search for conv/BN pairs
    that are sibling attributes rather than a detectron2 ``Conv2d`` or ``nn.Sequential``.
    Returns the names of the folded BatchNorm modules.
    """
    all_names: Dict[int, List[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        all_names.setdefault(id(module), []).append(name)
    modules = dict(model.named_modules())

    def unique(module) -> bool:  # a module reachable under two names may be shared: leave it
        return len(all_names.get(id(module), [])) == 1

    folded: List[str] = []

    # 1. detectron2 Conv2d(norm=BatchNorm)
    for name, module in modules.items():
        norm = getattr(module, "norm", None)
        if isinstance(module, _ConvNd) and not module.transposed and norm is not None:
            if is_foldable_bn(norm) and unique(module) and unique(norm):
                fold_conv_bn_(module, norm)
                module.norm = None
                folded.append(f"{name}.norm" if name else "norm")

    # 2. Conv then BN, adjacent in an nn.Sequential
    for name, module in modules.items():
        if not isinstance(module, nn.Sequential):
            continue
        keys = list(module._modules.keys())
        for first, second in zip(keys, keys[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if _is_plain_conv(conv) and is_foldable_bn(bn) and unique(conv) and unique(bn):
                fold_conv_bn_(conv, bn)
                module._modules[second] = nn.Identity()
                folded.append(f"{name}.{second}" if name else second)

    # 3. Any other conv whose output feeds one BN and nothing else, seen on a forward pass
    if example_inputs is not None:
        for conv_name, bn_name in _traced_pairs(model, example_inputs):
            conv, bn = modules[conv_name], modules[bn_name]
            if not (unique(conv) and unique(bn)):
                continue
            fold_conv_bn_(conv, bn)
            parent_name, _, attr = bn_name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, nn.Identity())
            folded.append(bn_name)
    return folded


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
