"""Any timm model with ``features_only`` support as a detectron2 backbone (``MODEL.TIMM``),
e.g. the EfficientNet-B2 encoder of Andrade's (2021) EfficientDet-D2 baseline (§5.5, §8.4).

Outputs are named ``c<log2 stride>`` after timm's ``feature_info``: EfficientNet-B2 with
``OUT_INDICES`` [1, 2, 3, 4] gives ``c2..c5`` (24 / 48 / 120 / 352 channels, strides 4 / 8
/ 16 / 32). The model is built with ``pretrained=False`` (nothing is downloaded);
``MODEL.TIMM.WEIGHTS`` is a local state dict of the *whole* timm model (as
``torch.save(timm.create_model(name).state_dict(), path)`` writes it, or a timm / HF
``pytorch_model.bin``), loaded with :func:`load_timm_state_dict`. Not through timm's own
``pretrained_cfg_overlay={"file": ...}``: timm loads EfficientNet feature models
non-strictly, so a file missing layers would silently leave them random; ours is strict.

Input normalisation stays detectron2's (``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``); timm's
ImageNet EfficientNets expect RGB with mean [123.675, 116.28, 103.53] and std [58.395,
57.12, 57.375] on 0-255 pixels. The number of input channels is ``len(MODEL.PIXEL_MEAN)``.
"""

import itertools
import math
import os
from typing import Dict, Mapping, Sequence

import timm
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from timm.models import adapt_input_conv

__all__ = ["TimmFeaturesBackbone", "build_timm_features_backbone", "load_timm_state_dict"]


def _candidate_keys(key: str):
    """``key`` first, then the names it may have in the whole model: timm's generic feature
    wrappers (``FeatureListNet`` / ``FeatureDictNet``) flatten nested top-level modules by
    turning ``.`` into ``_`` (``stages.0`` -> ``stages_0``); EfficientNet's own feature class
    keeps the names unchanged."""
    yield key
    head, dot, rest = key.partition(".")
    positions = [i for i, ch in enumerate(head) if ch == "_"]
    for n in range(1, len(positions) + 1):
        for chosen in itertools.combinations(positions, n):
            chars = list(head)
            for i in chosen:
                chars[i] = "."
            yield "".join(chars) + dot + rest


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(
            f"MODEL.TIMM.WEIGHTS={path!r}: no such file (expected a local state dict of the "
            "whole timm model; nothing is downloaded)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping):
        raise ValueError(f"MODEL.TIMM.WEIGHTS={path!r} does not hold a state dict")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def load_timm_state_dict(model: torch.nn.Module, path: str, in_chans: int = 3) -> None:
    """Load the whole-model state dict at ``path`` into the features-only ``model``.

    Keys the features model lacks (classifier, ``conv_head``, ``bn2`` ...) are ignored. Every
    key of ``model`` must be in the file (under its own name or the dotted name timm's
    wrappers flatten), else a ``KeyError`` names the file and the missing keys. The input
    conv of an RGB checkpoint is adapted to ``in_chans`` with timm's ``adapt_input_conv``.
    """
    source = _read_state_dict(path)
    target = model.state_dict()
    loaded, missing = {}, []
    for key, param in target.items():
        found = next((k for k in _candidate_keys(key) if k in source), None)
        if found is None:
            missing.append(key)
            continue
        value = source[found]
        if value.shape != param.shape:
            other_dims = value.ndim == 4 and value.shape[:1] + value.shape[2:] == (
                param.shape[:1] + param.shape[2:]
            )
            if other_dims and param.shape[1] == in_chans and value.shape[1] == 3:
                value = adapt_input_conv(in_chans, value)
            else:
                raise ValueError(
                    f"MODEL.TIMM.WEIGHTS={path!r}: {found!r} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(param.shape)} (another timm model?)"
                )
        loaded[key] = value
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise KeyError(
            f"MODEL.TIMM.WEIGHTS={path!r} lacks {len(missing)} of the model's "
            f"{len(target)} keys: {shown}"
        )
    model.load_state_dict(loaded, strict=True)


class TimmFeaturesBackbone(Backbone):
    """``timm.create_model(name, features_only=True, out_indices=...)`` with detectron2's
    backbone interface: ``forward`` returns ``{"c<log2 stride>": tensor}``,
    ``output_shape`` comes from timm's ``feature_info`` and ``size_divisibility`` is the
    largest output stride."""

    @configurable
    def __init__(
        self,
        *,
        name: str,
        out_indices: Sequence[int],
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        weights: str = "",
    ):
        """
        Args:
            name: timm model name, built with ``pretrained=False`` (nothing is downloaded);
                ``MODEL.TIMM.NAME``.
            out_indices: indices into the model's ``feature_info`` of the returned features,
                at most one per stride (EfficientNet: 1, 2, 3, 4 = strides 4 .. 32);
                ``MODEL.TIMM.OUT_INDICES``.
            in_chans: number of input channels; by config ``len(MODEL.PIXEL_MEAN)``.
            drop_path_rate: stochastic depth rate of the timm model; 0 disables it.
                ``MODEL.TIMM.DROP_PATH_RATE``.
            weights: path of a local state dict of the whole timm model, loaded strictly with
                :func:`load_timm_state_dict`; "" keeps the random initialisation.
                ``MODEL.TIMM.WEIGHTS``.
        """
        super().__init__()
        kwargs = {"drop_path_rate": drop_path_rate} if drop_path_rate > 0 else {}
        try:
            self.body = timm.create_model(
                name,
                pretrained=False,
                features_only=True,
                out_indices=tuple(out_indices),
                in_chans=in_chans,
                **kwargs,
            )
        except RuntimeError as err:  # timm: unknown model name
            raise ValueError(f"MODEL.TIMM.NAME={name!r}: {err}") from err
        info = self.body.feature_info
        self._out_features = []
        self._out_feature_strides = {}
        self._out_feature_channels = {}
        for stride, channels in zip(info.reduction(), info.channels()):
            level = math.log2(stride)
            if level != int(level):
                raise ValueError(f"{name}: feature stride {stride} is not a power of two")
            out = f"c{int(level)}"
            if out in self._out_feature_strides:
                raise ValueError(
                    f"{name}: MODEL.TIMM.OUT_INDICES={list(out_indices)} gives two features at "
                    f"stride {stride}; pick one index per stride"
                )
            self._out_features.append(out)
            self._out_feature_strides[out] = stride
            self._out_feature_channels[out] = channels
        if weights:
            load_timm_state_dict(self.body, weights, in_chans)

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        t = cfg.MODEL.TIMM
        return {
            "name": t.NAME,
            "out_indices": list(t.OUT_INDICES),
            "in_chans": len(cfg.MODEL.PIXEL_MEAN),
            "drop_path_rate": t.DROP_PATH_RATE,
            "weights": t.WEIGHTS,
        }

    @property
    def size_divisibility(self) -> int:
        return max(self._out_feature_strides.values())

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            n: ShapeSpec(
                channels=self._out_feature_channels[n], stride=self._out_feature_strides[n]
            )
            for n in self._out_features
        }

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return dict(zip(self._out_features, self.body(x)))


@BACKBONE_REGISTRY.register()
def build_timm_features_backbone(cfg, input_shape):
    """timm features-only model from ``MODEL.TIMM``."""
    return TimmFeaturesBackbone(cfg, input_shape)
