"""Registry of the encoder-decoder segmenter's decoders (``MODEL.ENCDEC.DECODER_NAME``).

A decoder is built as ``DECODER(cfg, input_shape)`` from the backbone's output shapes and
returns, from ``forward(features)``, a list of maps ordered coarsest first whose last one is
the finest. It exposes ``out_channels`` and ``out_strides`` (one per output, same order) and
``last_conv``: the conv producing the finest output when it ends in a ReLU that
``MODEL.ENCDEC.CLASSIFIER_INPUT_RELU`` may drop, else None. Every output feeds the inverted
hypercolumns (eq. 6.1); the finest alone feeds the plain classifier (``DECODER`` "unet").
"""
from detectron2.utils.registry import Registry

ENCDEC_DECODER_REGISTRY = Registry("ENCDEC_DECODER")
ENCDEC_DECODER_REGISTRY.__doc__ = __doc__

__all__ = ["ENCDEC_DECODER_REGISTRY", "build_encdec_decoder"]


def build_encdec_decoder(cfg, input_shape):
    """The decoder ``cfg.MODEL.ENCDEC.DECODER_NAME`` on the backbone outputs ``input_shape``."""
    name = cfg.MODEL.ENCDEC.DECODER_NAME
    if name not in ENCDEC_DECODER_REGISTRY:
        raise KeyError(
            f"MODEL.ENCDEC.DECODER_NAME={name!r} is not a registered decoder; "
            f"expected one of {sorted(k for k, _ in ENCDEC_DECODER_REGISTRY)}"
        )
    return ENCDEC_DECODER_REGISTRY.get(name)(cfg, input_shape)
