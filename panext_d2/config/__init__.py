"""One ``add_*_config`` per component, composed by :func:`add_panext_config`."""
from .common import add_common_config


def add_panext_config(cfg):
    """Add every key panext_d2 understands to a detectron2 config, with its default."""
    add_common_config(cfg)
    return cfg


__all__ = ["add_panext_config", "add_common_config"]
