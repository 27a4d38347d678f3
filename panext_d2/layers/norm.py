"""Normalisation layers: one norm-or-identity builder (GroupNorm groups adapted to narrow
widths), and batch-norm hyper-parameters set after construction (detectron2's ``get_norm``
builds BN layers with PyTorch's defaults, eps 1e-5 and momentum 0.1)."""

from detectron2.layers import FrozenBatchNorm2d, get_norm
from torch import nn

__all__ = ["group_norm_groups", "norm_or_identity", "set_bn_hyperparams", "truncated_normal_init_"]


def group_norm_groups(channels: int, max_groups: int = 32) -> int:
    """The largest divisor of ``channels`` that is at most ``max_groups`` and leaves at least
    two channels per group (32 for the usual widths, fewer for narrow test models)."""
    limit = max(1, min(max_groups, channels // 2))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def norm_or_identity(norm: str, channels: int) -> nn.Module:
    """detectron2's ``get_norm``, with GroupNorm's groups from :func:`group_norm_groups`;
    ``""`` gives ``nn.Identity``."""
    if norm == "GN":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    return get_norm(norm, channels) or nn.Identity()


def set_bn_hyperparams(module: nn.Module, eps: float, momentum: float) -> nn.Module:
    """Set ``eps`` (and ``momentum`` where it exists) on every BN layer of ``module``.

    TensorFlow's ``decay`` d corresponds to PyTorch's ``momentum = 1 - d``.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = eps
            m.momentum = momentum
        elif isinstance(m, FrozenBatchNorm2d):
            m.eps = eps
    return module


def truncated_normal_init_(module: nn.Module, std: float) -> nn.Module:
    """TensorFlow's ``truncated_normal_initializer(stddev=std)`` (values beyond 2 std
    redrawn) for every conv weight, zero biases; BN layers keep weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
