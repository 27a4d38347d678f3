"""One ``add_*_config`` per component, composed by :func:`add_panext_d2_config`."""
from detectron2.config import get_cfg

from .common import add_common_config
from .mobilenet import add_mobilenet_config
from .squeezenet import add_squeezenet_config
from .ssd import add_ssd_config
from .isb import add_isb_config
from .convnext import add_convnext_config
from .encdec import add_encdec_config
from .bifpn import add_bifpn_config
from .fapn import add_fapn_config
from .timm_backbone import add_timm_backbone_config
from .panext import add_panext_head_config
from .lowcost import add_lowcost_seg_config


def add_panext_d2_config(cfg):
    """Add every key panext_d2 understands to a detectron2 config, with its default."""
    add_common_config(cfg)
    add_mobilenet_config(cfg)
    add_squeezenet_config(cfg)
    add_ssd_config(cfg)
    add_isb_config(cfg)
    add_convnext_config(cfg)
    add_encdec_config(cfg)
    add_bifpn_config(cfg)  # MODEL.ENCDEC.BIFPN
    add_fapn_config(cfg)  # MODEL.ENCDEC.FAPN
    add_timm_backbone_config(cfg)
    add_panext_head_config(cfg)
    add_lowcost_seg_config(cfg)
    return cfg


def get_panext_cfg(config_file=None, opts=()):
    """detectron2's default config plus ours, merged with a YAML file and KEY VALUE overrides."""
    cfg = add_panext_d2_config(get_cfg())
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return cfg


__all__ = ["add_panext_d2_config", "add_common_config", "get_panext_cfg"]
