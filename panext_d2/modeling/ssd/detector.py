"""SSD meta-architecture (Kolhatkar (2020) §3.1.1; TF OD API ``ssd_mobilenet_v1_coco`` where the
thesis is silent).

backbone (MobileNet-v1: ``IN_FEATURES`` conv11 / conv13) -> extra layers (1x1 + 3x3/2, down
to 2x2 at 640, 1x1 at 300) -> per-map class / box predictor -> default boxes, matching,
box coder, hard-negative-mined losses | softmax + per-class NMS inference.

The steps are public methods so that the instance-segmentation-branch meta-architecture
can reuse them (subclass or composition):

* :meth:`preprocess_image` -> ImageList (normalised with ``pixel_mean`` / ``pixel_std``);
* :meth:`forward_features` -> (backbone feature dict, list of the SSD maps);
* :meth:`predict` -> (logits (N, A, K + 1), offsets (N, A, 4));
* :meth:`get_default_boxes` -> (A, 4) XYXY in input pixels;
* :meth:`label_default_boxes` -> per default box: class label, encoded target, matched GT index;
* :meth:`losses`, :meth:`detect` (per-image Instances in input coordinates),
  :meth:`postprocess` (rescaled to the requested output size).

With ``fold_bn_test`` (``MODEL.SSD.FOLD_BN_TEST``), inference runs a copy of the backbone and
extra layers whose BatchNorms are folded into the convolutions before them
(:func:`panext_d2.utils.batchnorm.fold_batchnorm`). The copy is made at the first inference
forward after ``eval()`` and dropped by ``train()``, by loading a state dict and by moving or
casting the model, so the trained modules and checkpoints never change.
"""
import copy

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone, detector_postprocess
from detectron2.structures import ImageList, Instances

from panext_d2.layers.norm import set_bn_hyperparams
from panext_d2.utils.batchnorm import fold_batchnorm

from .box_coder import SSDBoxCoder
from .default_boxes import DefaultBoxGenerator
from .extra_layers import SSDExtraLayers
from .head import SSDPredictor
from .losses import ssd_losses
from .matching import match_default_boxes
from .postprocess import ssd_inference

__all__ = ["SSD"]


@META_ARCH_REGISTRY.register()
class SSD(nn.Module):
    """Single Shot Detector; see the module docstring.

    Built from ``cfg.MODEL.SSD`` / ``cfg.MODEL.MOBILENET`` and detectron2's
    ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``, which an SSD config sets to 127.5 / 127.5 on RGB
    input (configs/ssd/Base-SSD-MobileNet-v1.yaml), the TF OD API's [-1, 1] scaling.
    Class index 0 of the classifier is the background; dataset class c is index c + 1.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_features: Sequence[str],
        extra_layers: SSDExtraLayers,
        predictor: SSDPredictor,
        default_box_generator: DefaultBoxGenerator,
        box_coder: SSDBoxCoder,
        num_classes: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        iou_threshold: float = 0.5,
        neg_pos_ratio: float = 3.0,
        min_negatives: int = 3,
        smooth_l1_beta: float = 1.0,
        loc_loss_weight: float = 1.0,
        cls_loss_weight: float = 1.0,
        score_thresh_test: float = 1e-8,
        nms_thresh_test: float = 0.6,
        topk_candidates_test: int = 0,
        detections_per_class_test: int = 100,
        max_detections_per_image: int = 100,
        size_divisibility: int = 32,
        input_format: Optional[str] = None,
        fold_bn_test: bool = False,
    ):
        """
        Args:
            backbone: a detectron2 :class:`Backbone` (MobileNet-v1 by config,
                ``MODEL.BACKBONE.NAME``) producing ``in_features``.
            in_features: backbone outputs fed to the predictor, finest first; the extra
                layers start from the last one. ``MODEL.SSD.IN_FEATURES``.
            extra_layers: the :class:`SSDExtraLayers` (1x1 + 3x3 stride-2 convs) appending the
                coarser maps (``MODEL.SSD.EXTRA_DEPTHS`` / ``EXTRA_MIN_DEPTH``,
                ``MODEL.MOBILENET.*`` norm, activation and BN settings).
            predictor: the :class:`SSDPredictor` giving class logits and box offsets per map
                (``MODEL.SSD.PREDICTOR_KERNEL_SIZE``, ``MODEL.MOBILENET.INIT_STD``).
            default_box_generator: the :class:`DefaultBoxGenerator` of the default boxes of
                every map (``MODEL.SSD.MIN_SCALE``, ``MAX_SCALE``, ``BOX_RATIOS``, ...).
            box_coder: the :class:`SSDBoxCoder` encoding boxes as offsets to default boxes
                (weights ``MODEL.SSD.BBOX_REG_WEIGHTS``).
            num_classes: foreground classes K; the classifier has K + 1 outputs, index 0 the
                background. ``MODEL.SSD.NUM_CLASSES``.
            pixel_mean, pixel_std: per-channel mean and std (0-255 scale, input channel
                order) used to normalise images; ``MODEL.PIXEL_MEAN`` / ``MODEL.PIXEL_STD``.
            iou_threshold: a default box is matched to a ground-truth box when their IoU
                exceeds this (each ground truth also gets its best box);
                ``MODEL.SSD.IOU_THRESHOLD``.
            neg_pos_ratio: hard negative mining keeps at most this many negatives per
                positive; ``MODEL.SSD.NEG_POS_RATIO``.
            min_negatives: negatives kept per image at least, also without objects;
                ``MODEL.SSD.MIN_NEGATIVES``.
            smooth_l1_beta: transition point of the smooth-L1 box loss;
                ``MODEL.SSD.SMOOTH_L1_BETA``.
            loc_loss_weight: weight of ``loss_box_reg``; ``MODEL.SSD.LOC_LOSS_WEIGHT``.
            cls_loss_weight: weight of ``loss_cls``; ``MODEL.SSD.CLS_LOSS_WEIGHT``.
            score_thresh_test: minimum softmax score of a detection before NMS;
                ``MODEL.SSD.SCORE_THRESH_TEST``.
            nms_thresh_test: IoU threshold of the per-class NMS; ``MODEL.SSD.NMS_THRESH_TEST``.
            topk_candidates_test: candidates per class kept before NMS; 0 keeps all (TF OD
                API). ``MODEL.SSD.TOPK_CANDIDATES_TEST``.
            detections_per_class_test: detections kept per class after NMS;
                ``MODEL.SSD.DETECTIONS_PER_CLASS_TEST``.
            max_detections_per_image: detections kept per image, best first;
                ``TEST.DETECTIONS_PER_IMAGE``.
            size_divisibility: images are padded to a multiple of this; by config
                max(32, the backbone's ``size_divisibility``).
            input_format: channel order of the input images ("RGB", "BGR"), only stored as
                ``self.input_format`` for callers; the model does not use it. None: unknown.
                ``INPUT.FORMAT``.
            fold_bn_test: run inference on a copy of the backbone and extra layers with the
                BatchNorms folded into the preceding convs (see the module docstring);
                ``MODEL.SSD.FOLD_BN_TEST``.
        """
        super().__init__()
        self.backbone = backbone
        self.in_features = list(in_features)
        self.extra_layers = extra_layers
        self.predictor = predictor
        self.default_box_generator = default_box_generator
        self.box_coder = box_coder
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.neg_pos_ratio = neg_pos_ratio
        self.min_negatives = min_negatives
        self.smooth_l1_beta = smooth_l1_beta
        self.loc_loss_weight = loc_loss_weight
        self.cls_loss_weight = cls_loss_weight
        self.score_thresh_test = score_thresh_test
        self.nms_thresh_test = nms_thresh_test
        self.topk_candidates_test = topk_candidates_test
        self.detections_per_class_test = detections_per_class_test
        self.max_detections_per_image = max_detections_per_image
        self.size_divisibility = size_divisibility
        self.input_format = input_format
        self.fold_bn_test = fold_bn_test
        self._drop_folded()
        self.register_load_state_dict_post_hook(lambda module, keys: module._drop_folded())
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        s, m = cfg.MODEL.SSD, cfg.MODEL.MOBILENET
        shapes = backbone.output_shape()
        missing = [f for f in s.IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.SSD.IN_FEATURES {missing} are not backbone outputs {list(shapes)}"
            )
        extra_layers = SSDExtraLayers(
            shapes[s.IN_FEATURES[-1]].channels,
            s.EXTRA_DEPTHS,
            depth_multiplier=m.DEPTH_MULTIPLIER,
            min_depth=s.EXTRA_MIN_DEPTH,
            norm=m.NORM,
            activation=m.ACTIVATION,
        )
        set_bn_hyperparams(extra_layers, m.BN_EPS, m.BN_MOMENTUM)
        generator = DefaultBoxGenerator(
            len(s.IN_FEATURES) + len(s.EXTRA_DEPTHS),
            min_scale=s.MIN_SCALE,
            max_scale=s.MAX_SCALE,
            aspect_ratios=s.BOX_RATIOS,
            interpolated_scale=s.INTERPOLATED_SCALE,
            reduce_boxes_in_lowest_layer=s.REDUCE_BOXES_IN_LOWEST_LAYER,
            clip=s.CLIP_DEFAULT_BOXES,
        )
        predictor = SSDPredictor(
            [shapes[f].channels for f in s.IN_FEATURES] + extra_layers.out_channels,
            generator.num_boxes_per_location,
            s.NUM_CLASSES,
            kernel_size=s.PREDICTOR_KERNEL_SIZE,
            init_std=m.INIT_STD,
        )
        return {
            "backbone": backbone,
            "in_features": s.IN_FEATURES,
            "extra_layers": extra_layers,
            "predictor": predictor,
            "default_box_generator": generator,
            "box_coder": SSDBoxCoder(s.BBOX_REG_WEIGHTS),
            "num_classes": s.NUM_CLASSES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "iou_threshold": s.IOU_THRESHOLD,
            "neg_pos_ratio": s.NEG_POS_RATIO,
            "min_negatives": s.MIN_NEGATIVES,
            "smooth_l1_beta": s.SMOOTH_L1_BETA,
            "loc_loss_weight": s.LOC_LOSS_WEIGHT,
            "cls_loss_weight": s.CLS_LOSS_WEIGHT,
            "score_thresh_test": s.SCORE_THRESH_TEST,
            "nms_thresh_test": s.NMS_THRESH_TEST,
            "topk_candidates_test": s.TOPK_CANDIDATES_TEST,
            "detections_per_class_test": s.DETECTIONS_PER_CLASS_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "size_divisibility": max(32, backbone.size_divisibility),
            "input_format": cfg.INPUT.FORMAT,
            "fold_bn_test": s.FOLD_BN_TEST,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    # ---- BN folding at inference ---------------------------------------------------------
    def _drop_folded(self):
        # Plain attribute (not a submodule): never in state dicts, DDP or parameter counts.
        self.__dict__["_folded"] = None

    def train(self, mode: bool = True):
        self._drop_folded()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._drop_folded()
        return super()._apply(fn, *args, **kwargs)

    def feature_modules(self) -> Tuple[nn.Module, nn.Module]:
        """(backbone, extra layers) for this forward: the BN-folded copies at inference when
        ``fold_bn_test``, the trained modules otherwise."""
        if self.training or not self.fold_bn_test:
            return self.backbone, self.extra_layers
        if self._folded is None:
            with torch.no_grad():
                folded = copy.deepcopy((self.backbone, self.extra_layers))
                for module in folded:
                    fold_batchnorm(module)
            self.__dict__["_folded"] = folded
        return self._folded

    # ---- steps ---------------------------------------------------------------------------
    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(images, self.size_divisibility)

    def forward_features(
        self, images: torch.Tensor
    ) -> Tuple[Dict[str, torch.Tensor], List[torch.Tensor]]:
        """Normalised (N, 3, H, W) input -> (every backbone output, the SSD feature maps)."""
        backbone, extra_layers = self.feature_modules()
        features = backbone(images)
        maps = [features[f] for f in self.in_features]
        maps.extend(extra_layers(maps[-1]))
        return features, maps

    def predict(self, maps: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.predictor(maps)

    def get_default_boxes(self, maps: List[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        return self.default_box_generator([m.shape[-2:] for m in maps], images.shape[-2:])

    @torch.no_grad()
    def label_default_boxes(
        self, default_boxes: torch.Tensor, gt_instances: List[Instances]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Returns:
            gt_labels (N, A) long: 0 background, c + 1 for foreground class c;
            gt_deltas (N, A, 4): encoded matched boxes (zeros for background);
            matched_idxs (N, A) long: index into each image's instances, -1 for background.
        """
        labels, deltas, matches = [], [], []
        for inst in gt_instances:
            gt_boxes = inst.gt_boxes.tensor
            matched = match_default_boxes(gt_boxes, default_boxes, self.iou_threshold)
            foreground = matched >= 0
            index = matched.clamp(min=0)
            if gt_boxes.numel():
                label = torch.where(foreground, inst.gt_classes[index] + 1, torch.zeros_like(index))
                delta = self.box_coder.encode(gt_boxes[index], default_boxes)
                delta = delta * foreground[:, None]
            else:
                label = torch.zeros_like(index)
                delta = default_boxes.new_zeros(default_boxes.shape)
            labels.append(label)
            deltas.append(delta)
            matches.append(matched)
        return torch.stack(labels), torch.stack(deltas), torch.stack(matches)

    def losses(self, pred_logits, pred_deltas, gt_labels, gt_deltas) -> Dict[str, torch.Tensor]:
        return ssd_losses(
            pred_logits,
            pred_deltas,
            gt_labels,
            gt_deltas,
            neg_pos_ratio=self.neg_pos_ratio,
            min_negatives=self.min_negatives,
            smooth_l1_beta=self.smooth_l1_beta,
            loc_weight=self.loc_loss_weight,
            cls_weight=self.cls_loss_weight,
        )

    def detect(self, pred_logits, pred_deltas, default_boxes, image_sizes) -> List[Instances]:
        return ssd_inference(
            pred_logits,
            pred_deltas,
            default_boxes,
            self.box_coder,
            image_sizes,
            score_thresh=self.score_thresh_test,
            nms_thresh=self.nms_thresh_test,
            topk_per_class=self.topk_candidates_test,
            max_per_class=self.detections_per_class_test,
            max_detections=self.max_detections_per_image,
        )

    @staticmethod
    def postprocess(instances: List[Instances], batched_inputs: List[Dict], image_sizes):
        """Rescale detections to each input's "height" / "width" (default: its input size)."""
        processed = []
        for result, inputs, size in zip(instances, batched_inputs, image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            processed.append({"instances": detector_postprocess(result, height, width)})
        return processed

    # ---- entry points --------------------------------------------------------------------
    def forward(self, batched_inputs: List[Dict]):
        """detectron2 convention: a list of dicts with "image" (C, H, W) and, in training,
        "instances" (gt_boxes, gt_classes); returns a loss dict in training, otherwise one
        ``{"instances": Instances}`` per image."""
        if not self.training:
            return self.inference(batched_inputs)
        images, features, pred_logits, pred_deltas, default_boxes = self.run_detector(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        gt_labels, gt_deltas, _ = self.label_default_boxes(default_boxes, gt_instances)
        losses = self.losses(pred_logits, pred_deltas, gt_labels, gt_deltas)
        losses.update(self.extra_losses(features, gt_instances, images.tensor.shape[-2:]))
        return losses

    def inference(self, batched_inputs: List[Dict], do_postprocess: bool = True):
        images, features, pred_logits, pred_deltas, default_boxes = self.run_detector(batched_inputs)
        results = self.detect(pred_logits, pred_deltas, default_boxes, images.image_sizes)
        results = self.extend_detections(features, results)
        if not do_postprocess:
            return results
        return self.postprocess(results, batched_inputs, images.image_sizes)

    def run_detector(self, batched_inputs: List[Dict]):
        """(images, backbone features, class logits, box deltas, default boxes) of a batch."""
        images = self.preprocess_image(batched_inputs)
        features, maps = self.forward_features(images.tensor)
        pred_logits, pred_deltas = self.predict(maps)
        return images, features, pred_logits, pred_deltas, self.get_default_boxes(maps, images.tensor)

    def extra_losses(self, features, gt_instances: List[Instances], input_size) -> Dict:
        """Losses of heads built on the detector (SSD-ISB's masks); none here."""
        return {}

    def extend_detections(self, features, detections: List[Instances]) -> List[Instances]:
        """Outputs that heads built on the detector add to its detections; none here."""
        return detections
