"""Batch-norm hyper-parameters set after construction (detectron2's ``get_norm`` builds
BN layers with PyTorch's defaults, eps 1e-5 and momentum 0.1)."""

from torch import nn

from detectron2.layers import FrozenBatchNorm2d

__all__ = ["set_bn_hyperparams", "truncated_normal_init_"]


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
