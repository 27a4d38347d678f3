"""Activation layers by name, so that configs can pick them with a string."""

from torch import nn

__all__ = ["get_activation"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,  # EfficientNet / EfficientDet's name for x * sigmoid(x)
    "silu": nn.SiLU,
}


def get_activation(name: str, inplace: bool = True):
    """``"relu"`` -> ``nn.ReLU``, ``"relu6"`` -> ``nn.ReLU6``, ``"swish"`` / ``"silu"`` ->
    ``nn.SiLU``; ``""`` or ``None`` -> ``None``
    (no activation, detectron2's ``Conv2d(activation=None)`` convention)."""
    if not name:
        return None
    key = name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[key](inplace=inplace)
