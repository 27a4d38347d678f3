"""Registry of the encoder-decoder segmenter's decoders (``MODEL.ENCDEC.DECODER_NAME``).

A decoder is built as ``DECODER(cfg, input_shape)`` from the backbone's output shapes and
returns, from ``forward(features)``, a list of maps ordered coarsest first whose last one is
the finest. It exposes ``out_channels`` and ``out_strides`` (one per output, same order) and
``last_conv``: the conv producing the finest output when it ends in a ReLU that
``MODEL.ENCDEC.CLASSIFIER_INPUT_RELU`` may drop, else None. Every output feeds the inverted
hypercolumns (eq. 6.1); the finest alone feeds the plain classifier (``MODEL.ENCDEC.HEAD`` "last_layer").
"""
from detectron2.utils.registry import Registry

ENCDEC_DECODER_REGISTRY = Registry("ENCDEC_DECODER")
ENCDEC_DECODER_REGISTRY.__doc__ = __doc__

__all__ = ["ENCDEC_DECODER_REGISTRY", "build_encdec_decoder", "input_strides"]


def build_encdec_decoder(cfg, input_shape):
    """The decoder ``cfg.MODEL.ENCDEC.DECODER_NAME`` on the backbone outputs ``input_shape``."""
    name = cfg.MODEL.ENCDEC.DECODER_NAME
    if name not in ENCDEC_DECODER_REGISTRY:
        raise KeyError(
            f"MODEL.ENCDEC.DECODER_NAME={name!r} is not a registered decoder; "
            f"expected one of {sorted(k for k, _ in ENCDEC_DECODER_REGISTRY)}"
        )
    return ENCDEC_DECODER_REGISTRY.get(name)(cfg, input_shape)


def input_strides(input_shape, in_features, doubling: bool = False):
    """The strides of a decoder's ``in_features`` (``MODEL.ENCDEC.IN_FEATURES``), checked to
    be backbone outputs ordered finest to coarsest (each stride twice the previous one with
    ``doubling``); a ``ValueError`` names the key otherwise."""
    missing = [f for f in in_features if f not in input_shape]
    if not in_features or missing:
        raise ValueError(
            f"MODEL.ENCDEC.IN_FEATURES={list(in_features)}: expected a non-empty list of "
            f"backbone outputs among {sorted(input_shape)}; missing {missing}"
        )
    strides = [input_shape[f].stride for f in in_features]
    steps = list(zip(strides, strides[1:]))
    if any(b != 2 * a for a, b in steps) if doubling else any(a >= b for a, b in steps):
        rule = "each stride twice the previous one" if doubling else "strictly increasing strides"
        raise ValueError(
            f"MODEL.ENCDEC.IN_FEATURES={list(in_features)} must go from finest to coarsest "
            f"({rule}), got strides {strides}"
        )
    return strides
