"""timm's ConvNeXt as a detectron2 backbone, and the PaNeXt-e variant (Debucean (2022) §3.1.1).

Outputs ``res2..res5`` (stage 1-4 outputs, strides 4/8/16/32). Parameter names are timm's
(``stem.*``, ``stages.{i}.downsample.*``, ``stages.{i}.blocks.{j}.*``) without the
classifier head, so a timm ``convnext_*`` state dict loads into it once the model's prefix
is added (``tools/convert_convnext_weights.py``).

Input normalisation stays detectron2's (``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` in the
meta-architecture). ImageNet ConvNeXt weights, timm's and the official ones alike, expect
RGB input (``INPUT.FORMAT: "RGB"``) normalised with timm's ``IMAGENET_DEFAULT_MEAN`` /
``IMAGENET_DEFAULT_STD``, i.e. on 0-255 pixels ``PIXEL_MEAN = [123.675, 116.28, 103.53]``
and ``PIXEL_STD = [58.395, 57.12, 57.375]``.
"""
import re
from functools import partial
from typing import Callable, Optional, Sequence

from torch import nn
from timm.layers import DropBlock2d, Mlp, get_act_layer, trunc_normal_
from timm.models.convnext import ConvNeXt

from detectron2.config import configurable
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from panext_d2.layers.smelu import SmeLU

__all__ = [
    "ExtendedMlp",
    "ConvNeXtBackbone",
    "PaNeXtEBackbone",
    "build_convnext_backbone",
    "build_panext_e_backbone",
    "layer_lr_decay_id",
    "layer_lr_decay_multiplier",
    "num_lr_decay_layers",
    "layer_lr_decay_func",
]

STAGE_NAMES = ("res2", "res3", "res4", "res5")


def _init_linear(linear: nn.Linear) -> None:
    """timm's ConvNeXt init for linears (timm.models.convnext._init_weights)."""
    trunc_normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)


class ExtendedMlp(Mlp):
    """ConvNeXt block MLP with an extra pointwise 4C -> 4C linear (PaNeXt-e, §3.1.1):
    ``fc1 -> act -> fc_mid -> act_mid -> fc2``.

    ``fc1``/``fc2`` keep timm's names, so timm checkpoints load into them; only ``fc_mid``
    has no pretrained weights. All linears are initialised as timm initialises ConvNeXt
    linears (truncated normal, std 0.02, zero bias). ``act_mid`` is the thesis' unstated
    choice (docs/DESIGN.md §1): the block's activation by default, identity if ``mid_act`` is False.
    """

    def __init__(self, in_features: int, hidden_features: int, act_layer, mid_act: bool = True):
        super().__init__(in_features, hidden_features, act_layer=act_layer)
        self.fc_mid = nn.Linear(hidden_features, hidden_features)
        self.act_mid = act_layer() if mid_act else nn.Identity()
        for linear in (self.fc1, self.fc_mid, self.fc2):
            _init_linear(linear)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        x = self.act_mid(self.fc_mid(x))
        return self.drop2(self.fc2(self.norm(x)))


def _check_stages(stages: Sequence[int], what: str) -> None:
    if any(s not in (1, 2, 3, 4) for s in stages):
        raise ValueError(f"{what} are 1-based stage numbers in 1..4, got {list(stages)}")


class ConvNeXtBackbone(Backbone):
    """ConvNeXt built with ``timm.models.convnext.ConvNeXt`` (random init, nothing is
    downloaded; load ImageNet weights through ``MODEL.WEIGHTS``).

    Args:
        depths, dims: blocks and channels per stage (ConvNeXt-T: (3, 3, 9, 3), (96, 192,
            384, 768)).
        in_chans: input channels.
        act_layer: block activation, a timm name or a module class / factory.
        drop_path_rate: timm's stochastic depth, linear from 0 to this over all blocks.
        extended_stages: 1-based stages whose blocks get :class:`ExtendedMlp`.
        extended_act: activation after the extra linear of :class:`ExtendedMlp`.
        drop_block_prob, drop_block_size, drop_block_stages: timm ``DropBlock2d`` on the
            residual branch of every block of the listed 1-based stages (next to DropPath,
            before the residual sum); constant probability, off when 0. Like DropPath it
            acts in training mode only.
        freeze_at: as detectron2's ``MODEL.BACKBONE.FREEZE_AT``: 0 freezes nothing, 1 the
            stem, k > 1 the stem and stages 1..k-1. Frozen parts get ``requires_grad=False``
            and stay in eval mode (no DropPath / DropBlock); there is no BatchNorm to
            convert, and LayerNorm has no running statistics. An extended stage cannot be
            frozen: its extra convs have no pretrained weights.
        out_features: subset of ``res2..res5``; stages after the last one are not built.
    """

    @configurable
    def __init__(
        self,
        *,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        in_chans: int = 3,
        act_layer="gelu",
        drop_path_rate: float = 0.0,
        extended_stages: Sequence[int] = (),
        extended_act: bool = True,
        drop_block_prob: float = 0.0,
        drop_block_size: int = 5,
        drop_block_stages: Sequence[int] = (3, 4),
        freeze_at: int = 0,
        out_features: Sequence[str] = STAGE_NAMES,
    ):
        super().__init__()
        _check_stages(extended_stages, "extended_stages")
        _check_stages(drop_block_stages, "drop_block_stages")
        frozen_extended = [s for s in extended_stages if s < freeze_at]
        if frozen_extended:
            raise ValueError(
                f"freeze_at={freeze_at} (MODEL.BACKBONE.FREEZE_AT) would freeze extended stage(s) "
                f"{frozen_extended}, whose extra pointwise convs are new and randomly initialised; "
                f"freeze at most the stages before {min(extended_stages)} (FREEZE_AT <= "
                f"{min(extended_stages)})"
            )
        net = ConvNeXt(
            in_chans=in_chans,
            num_classes=0,
            depths=tuple(depths),
            dims=tuple(dims),
            act_layer=act_layer,
            drop_path_rate=drop_path_rate,
        )
        act = get_act_layer(act_layer)
        for s in extended_stages:
            for block in net.stages[s - 1].blocks:
                block.mlp = ExtendedMlp(dims[s - 1], block.mlp.fc1.out_features, act, extended_act)
        if drop_block_prob > 0:
            for s in drop_block_stages:
                for block in net.stages[s - 1].blocks:
                    # ConvNeXtBlock computes drop_path(branch) + shortcut; DropPath has no
                    # parameters, so this keeps every state-dict key.
                    block.drop_path = nn.Sequential(
                        DropBlock2d(drop_block_prob, drop_block_size), block.drop_path
                    )

        num_stages = max(STAGE_NAMES.index(f) for f in out_features) + 1
        self.stem = net.stem
        self.stages = net.stages[:num_stages]
        self._out_features = list(out_features)
        self._out_feature_strides = {n: 4 * 2**i for i, n in enumerate(STAGE_NAMES)}
        self._out_feature_channels = dict(zip(STAGE_NAMES, dims))
        self.freeze_at = freeze_at
        for module in self._frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg, input_shape):
        c = cfg.MODEL.CONVNEXT
        return {
            "depths": tuple(c.DEPTHS),
            "dims": tuple(c.DIMS),
            "in_chans": input_shape.channels,
            "drop_path_rate": c.DROP_PATH_RATE,
            "drop_block_prob": c.DROP_BLOCK.PROB,
            "drop_block_size": c.DROP_BLOCK.SIZE,
            "drop_block_stages": tuple(c.DROP_BLOCK.STAGES),
            "freeze_at": cfg.MODEL.BACKBONE.FREEZE_AT,
            "out_features": tuple(c.OUT_FEATURES),
        }

    def _frozen_modules(self):
        if self.freeze_at <= 0:
            return []
        return [self.stem, *self.stages[: self.freeze_at - 1]]

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, x):
        x = self.stem(x)
        outputs = {}
        for name, stage in zip(STAGE_NAMES, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


class PaNeXtEBackbone(ConvNeXtBackbone):
    """PaNeXt-e's "improved ConvNeXt-tiny" (§3.1.1): SmeLU instead of GELU in every block,
    and :class:`ExtendedMlp` (extra pointwise 4C -> 4C) in the blocks of
    ``extended_stages``. The text says stages (1, 2, 4); the reported 165 MB model size
    fits (1, 2) (docs/DESIGN.md §1.2). Other arguments as
    :class:`ConvNeXtBackbone`.
    """

    @configurable
    def __init__(
        self,
        *,
        smelu_beta: float = 2.0,
        extended_stages: Sequence[int] = (1, 2, 4),
        extended_act: bool = True,
        **kwargs,
    ):
        """
        Args:
            smelu_beta: beta of the SmeLU (eq. 2.6.8) that replaces GELU in every block
                (width of its quadratic region); ``MODEL.CONVNEXT.PANEXT_E.SMELU_BETA``.
            extended_stages: 1-based stages (in 1..4) whose blocks get :class:`ExtendedMlp`;
                () for none. ``MODEL.CONVNEXT.PANEXT_E.EXTENDED_STAGES``.
            extended_act: whether the extra 4C -> 4C linear is followed by the block's
                activation (SmeLU); False leaves it linear.
                ``MODEL.CONVNEXT.PANEXT_E.EXTENDED_ACT``.
            kwargs: the other arguments of :class:`ConvNeXtBackbone` (``depths``, ``dims``,
                ``in_chans``, ``drop_path_rate``, ``drop_block_*``, ``freeze_at``,
                ``out_features``; not ``act_layer``, which is SmeLU), with its config keys
                except ``drop_block_prob``, taken from
                ``MODEL.CONVNEXT.PANEXT_E.DROP_BLOCK_PROB``.
        """
        super().__init__(
            act_layer=partial(SmeLU, beta=smelu_beta),
            extended_stages=extended_stages,
            extended_act=extended_act,
            **kwargs,
        )

    @classmethod
    def from_config(cls, cfg, input_shape):
        e = cfg.MODEL.CONVNEXT.PANEXT_E
        return {
            **super().from_config(cfg, input_shape),
            "smelu_beta": e.SMELU_BETA,
            "extended_stages": tuple(e.EXTENDED_STAGES),
            "extended_act": e.EXTENDED_ACT,
            "drop_block_prob": e.DROP_BLOCK_PROB,
        }


@BACKBONE_REGISTRY.register()
def build_convnext_backbone(cfg, input_shape):
    """ConvNeXt from ``MODEL.CONVNEXT``."""
    return ConvNeXtBackbone(cfg, input_shape)


@BACKBONE_REGISTRY.register()
def build_panext_e_backbone(cfg, input_shape):
    """PaNeXt-e backbone from ``MODEL.CONVNEXT`` and ``MODEL.CONVNEXT.PANEXT_E``."""
    return PaNeXtEBackbone(cfg, input_shape)


# Layer-wise LR decay, the rule of the official ConvNeXt detection / segmentation code
# ("layer_wise" decay): stem 0; stage 1 -> 1; stage 2 -> 2; stage 3 downsample -> 3 and its
# block j -> 3 + j // 3; stage 4 -> num_layers; anything else -> num_layers + 1.
_BACKBONE_PARAM = re.compile(
    r"^backbone\.(?:bottom_up\.)?(?:stem\.|stages\.(\d)\.(?:blocks\.(\d+)\.)?)"
)


def num_lr_decay_layers(depths: Sequence[int]) -> int:
    """``num_layers`` for :func:`layer_lr_decay_id` so that ids are contiguous: the id of
    stage 4 (6 for ConvNeXt-T, 12 for depth 27 in stage 3 as in the official configs)."""
    return 4 + (depths[2] - 1) // 3


def layer_lr_decay_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter for layer-wise LR decay.

    Name contract: ``name`` is as ``model.named_parameters()`` yields it for a
    meta-architecture whose ``backbone`` is a :class:`ConvNeXtBackbone` (``backbone.stem.*``,
    ``backbone.stages.*``) or an FPN over one (``backbone.bottom_up.stem.*``, ...). Every
    other name (FPN, heads) gets ``num_layers + 1``.
    """
    m = _BACKBONE_PARAM.match(name)
    if m is None:
        return num_layers + 1
    stage, block = m.groups()
    if stage is None:
        return 0
    stage = int(stage)
    if stage < 2:
        return stage + 1
    if stage == 3:
        return num_layers
    return 3 if block is None else 3 + int(block) // 3


def layer_lr_decay_multiplier(name: str, num_layers: int, decay: float) -> float:
    """LR multiplier ``decay ** (num_layers + 1 - layer_lr_decay_id(name, num_layers))``:
    1 for everything outside the backbone, ``decay`` for stage 4, ``decay ** (num_layers
    + 1)`` for the stem. ``decay = 1.0`` (``MODEL.CONVNEXT.LAYER_DECAY`` default) is off."""
    return decay ** (num_layers + 1 - layer_lr_decay_id(name, num_layers))


def layer_lr_decay_func(cfg) -> Optional[Callable[[str], float]]:
    """``lr_factor_func`` for detectron2's ``get_default_optimizer_params`` (which calls it
    with ``"<module name>.<param name>"``, the names of the contract above), or None when
    ``MODEL.CONVNEXT.LAYER_DECAY`` is 1.0."""
    decay = cfg.MODEL.CONVNEXT.LAYER_DECAY
    if decay == 1.0:
        return None
    num_layers = num_lr_decay_layers(cfg.MODEL.CONVNEXT.DEPTHS)
    return partial(layer_lr_decay_multiplier, num_layers=num_layers, decay=decay)
