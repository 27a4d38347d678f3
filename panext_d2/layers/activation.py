"""Activation layers by name, so that configs can pick them with a string: the one factory
of the package (timm's ConvNeXt takes timm's own names)."""
import functools
from typing import Callable, Optional

from torch import nn

from .smelu import SmeLU

__all__ = ["activation_factory", "get_activation"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,  # EfficientNet / EfficientDet's name for x * sigmoid(x)
    "silu": nn.SiLU,
}


def activation_factory(name: str, inplace: bool = True, smelu_beta: float = 2.0) -> Callable[[], Optional[nn.Module]]:
    """A callable making a new activation module per call: ``"relu"``, ``"relu6"``,
    ``"swish"`` / ``"silu"`` (nn.SiLU), ``"smelu"`` (SmeLU of ``smelu_beta``); ``""`` or
    ``None`` make ``None`` (no activation, detectron2's ``Conv2d(activation=None)``)."""
    if not name:
        return lambda: None
    key = name.lower()
    if key == "smelu":
        return functools.partial(SmeLU, smelu_beta)
    if key not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS) + ['smelu']}"
        )
    return functools.partial(_ACTIVATIONS[key], inplace=inplace)


def get_activation(name: str, inplace: bool = True, identity: bool = False, **kwargs) -> Optional[nn.Module]:
    """One activation module (see :func:`activation_factory`); with ``identity``, no
    activation is ``nn.Identity`` instead of ``None``."""
    module = activation_factory(name, inplace, **kwargs)()
    return nn.Identity() if module is None and identity else module
