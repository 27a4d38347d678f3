"""Andrade (2021) encoder-decoder segmenter (docs/DESIGN.md §4): a registered detectron2 backbone as encoder,
the U-Net decoder, optionally the inverted hypercolumns and the multi-level fuse block, a 1x1
classifier and a final bilinear upsampling to the input size. Outputs detectron2's
``sem_seg`` (K x height x width logits) at inference and a loss dict in training."""

from typing import Dict, Optional

import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.layers import Conv2d
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from torch import nn

from .build import build_encdec_decoder
from .fuse import MultiLevelFuse
from .hypercolumns import InvertedHypercolumns
from .losses import focal_loss, foreground_dice_loss, pixel_cross_entropy
from .unet import resize_to

HEADS = ("last_layer", "hypercolumns", "fuse_block")
MAIN_LOSSES = ("cross_entropy", "focal")


class EncDecHead(nn.Module):
    """Decoder + (hypercolumns) + (fuse block) + 1x1 classifier; logits at the stride of the
    decoder's finest output.

    ``mode`` (``MODEL.ENCDEC.HEAD``): "last_layer" classifies the decoder's finest output (the
    plain baseline of any decoder, the U-Net for the default one); "hypercolumns" classifies
    X of eq. 6.1 over every decoder output; "fuse_block" classifies Z' = fuse(X) of eq. 6.2,
    with ``fuse`` switching its parts.
    """

    @configurable
    def __init__(
        self,
        *,
        decoder: nn.Module,
        num_classes: int,
        mode: str = "fuse_block",
        hypercolumn_channels: int = 64,
        norm: str = "BN",
        fuse: Optional[dict] = None,
        classifier_input_relu: bool = True,
    ):
        """
        Args:
            decoder: a decoder as described in :mod:`.build`.
            classifier_input_relu: False drops the ReLU of the last 3x3 conv-BN-ReLU before
                the classifier (fuse block's F, or the decoder's last conv for "last_layer"), so the
                classifier sees signed features (``MODEL.ENCDEC.CLASSIFIER_INPUT_RELU``).
        """
        super().__init__()
        if mode not in HEADS:
            raise ValueError(f"MODEL.ENCDEC.HEAD={mode!r}; expected one of {HEADS}")
        self.decoder = decoder
        self.hypercolumns = None
        self.fuse = None
        width = self.decoder.out_channels[-1]
        if mode != "last_layer":
            self.hypercolumns = InvertedHypercolumns(
                self.decoder.out_channels, hypercolumn_channels
            )
            width = hypercolumn_channels
        if mode == "fuse_block":
            self.fuse = MultiLevelFuse(width, norm=norm, **(fuse or {}))
        if not classifier_input_relu:
            last = self._last_conv_before_classifier()
            if last is not None:
                last.activation = None
        self.predictor = Conv2d(width, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)
        self.output_stride = self.decoder.out_strides[-1]

    @classmethod
    def from_config(cls, cfg, input_shape):
        e = cfg.MODEL.ENCDEC
        return {
            "decoder": build_encdec_decoder(cfg, input_shape),
            "num_classes": e.NUM_CLASSES,
            "mode": e.HEAD,
            "hypercolumn_channels": e.HYPERCOLUMN_CHANNELS,
            "norm": e.NORM,
            "classifier_input_relu": e.CLASSIFIER_INPUT_RELU,
            "fuse": {
                "se_in": e.FUSE.SE_IN,
                "conv": e.FUSE.CONV,
                "se_out": e.FUSE.SE_OUT,
                "num_convs": e.FUSE.NUM_CONVS,
                "reduction": e.FUSE.SE_REDUCTION,
            },
        }

    def _last_conv_before_classifier(self):
        """The 3x3 conv whose output (possibly SE-gated) reaches the classifier with no
        other conv in between, or None when a linear map (eq. 6.1) comes last."""
        if self.fuse is not None:
            convs = [m for m in self.fuse.body if isinstance(m, Conv2d)]
            return convs[-1] if convs else None
        if self.hypercolumns is None:
            return self.decoder.last_conv
        return None

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = self.decoder(features)
        if self.hypercolumns is None:
            x = outputs[-1]
        else:
            x = self.hypercolumns(outputs)
        if self.fuse is not None:
            x = self.fuse(x)
        return self.predictor(x)


def check_num_classes(num_classes: int, dataset_names) -> None:
    """MODEL.ENCDEC.NUM_CLASSES must equal the number of ``stuff_classes`` (background
    included) of every dataset that names its classes."""
    for name in dataset_names:
        classes = MetadataCatalog.get(name).get("stuff_classes")
        if classes and len(classes) != num_classes:
            raise ValueError(
                f"dataset {name!r} has {len(classes)} classes {list(classes)[:6]}, but "
                f"MODEL.ENCDEC.NUM_CLASSES is {num_classes}"
            )


@META_ARCH_REGISTRY.register()
class EncDecSegmentor(nn.Module):
    """Backbone -> :class:`EncDecHead` -> bilinear upsampling to the (padded) input size.

    Training inputs carry ``sem_seg`` (H x W int64, ``ignore_value`` where unlabelled); the
    losses are ``loss_sem_seg`` (cross-entropy or focal, all images) and, when
    ``fg_loss_weight`` > 0, ``loss_fg_dice`` = alpha * eq. 6.3 (foreground images only).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: EncDecHead,
        pixel_mean,
        pixel_std,
        ignore_value: int = 255,
        size_divisibility: int = 32,
        main_loss: str = "cross_entropy",
        focal_gamma: float = 2.0,
        fg_loss_weight: float = 0.1,
    ):
        """
        Args:
            backbone: the encoder, a detectron2 :class:`Backbone` (``MODEL.BACKBONE.NAME``) that
                gives the features ``head`` reads (``MODEL.ENCDEC.IN_FEATURES``).
            head: the :class:`EncDecHead` (decoder, hypercolumns, fuse block, classifier) built
                on the backbone's output shapes (``MODEL.ENCDEC.*``).
            pixel_mean, pixel_std: per-channel mean and std (in the input's channel order,
                0-255 scale) used to normalize images; ``MODEL.PIXEL_MEAN`` /
                ``MODEL.PIXEL_STD``.
            ignore_value: ``sem_seg`` label ignored by the losses, also the padding value of
                the targets; ``MODEL.ENCDEC.IGNORE_VALUE``.
            size_divisibility: images are zero-padded to a multiple of this (at least the
                backbone's own ``size_divisibility``); ``MODEL.ENCDEC.SIZE_DIVISIBILITY``.
            main_loss: pixel loss on all images, "cross_entropy" or "focal" (softmax focal
                loss); ``MODEL.ENCDEC.LOSS.MAIN``.
            focal_gamma: focusing parameter of the focal loss (unused with cross-entropy);
                ``MODEL.ENCDEC.LOSS.FOCAL_GAMMA``.
            fg_loss_weight: weight alpha of the foreground soft-Dice loss (eq. 6.3, images with
                foreground only), returned as ``loss_fg_dice``; 0 disables it.
                ``MODEL.ENCDEC.LOSS.FG_WEIGHT``.
        """
        super().__init__()
        if main_loss not in MAIN_LOSSES:
            raise ValueError(f"MODEL.ENCDEC.LOSS.MAIN={main_loss!r}; expected one of {MAIN_LOSSES}")
        self.backbone = backbone
        self.head = head
        self.ignore_value = ignore_value
        self.size_divisibility = max(size_divisibility, backbone.size_divisibility)
        self.main_loss = main_loss
        self.focal_gamma = focal_gamma
        self.fg_loss_weight = fg_loss_weight
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        missing = [f for f in cfg.MODEL.ENCDEC.IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.ENCDEC.IN_FEATURES {missing} are not produced by the backbone "
                f"{cfg.MODEL.BACKBONE.NAME!r} (it gives {sorted(shapes)}; for ResNets set "
                "MODEL.RESNETS.OUT_FEATURES)"
            )
        e = cfg.MODEL.ENCDEC
        check_num_classes(e.NUM_CLASSES, [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST])
        return {
            "backbone": backbone,
            "head": EncDecHead(cfg, shapes),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_value": e.IGNORE_VALUE,
            "size_divisibility": e.SIZE_DIVISIBILITY,
            "main_loss": e.LOSS.MAIN,
            "focal_gamma": e.LOSS.FOCAL_GAMMA,
            "fg_loss_weight": e.LOSS.FG_WEIGHT,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def forward(self, batched_inputs):
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        images = ImageList.from_tensors(images, self.size_divisibility)
        logits = self.head(self.backbone(images.tensor))
        logits = resize_to(logits, images.tensor.shape[-2:])
        if self.training:
            targets = ImageList.from_tensors(
                [x["sem_seg"].to(self.device) for x in batched_inputs],
                self.size_divisibility,
                pad_value=self.ignore_value,
            ).tensor
            return self.losses(logits, targets.long())
        results = []
        for logit, inputs, size in zip(logits, batched_inputs, images.image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            results.append({"sem_seg": sem_seg_postprocess(logit, size, height, width)})
        return results

    def losses(self, logits, targets):
        if self.main_loss == "focal":
            main = focal_loss(logits, targets, self.focal_gamma, self.ignore_value)
        else:
            main = pixel_cross_entropy(logits, targets, self.ignore_value)
        losses = {"loss_sem_seg": main}
        if self.fg_loss_weight > 0:
            fg = foreground_dice_loss(logits, targets, self.ignore_value)
            losses["loss_fg_dice"] = self.fg_loss_weight * fg
        return losses
