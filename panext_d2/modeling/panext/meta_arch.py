"""The PaNeXt meta-architecture (Debucean (2022) ch. 3): backbone + FPN (P2-P7), kernel generator
on P3-P7, high-resolution processor on P2-P5, masks as dynamic 1x1 convolutions."""

from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from ...utils.panoptic_conventions import class_ids_from_metadata
from . import inference as infer
from .heads import KernelHead, PositionHead
from .hr_processor import HRProcessor
from .losses import segmentation_loss, stuff_position_loss, thing_position_loss
from .targets import build_targets, flatten_levels, select_thing_positions, training_stuff_kernels

STUFF_KERNEL_MODES = ("panopticfcn", "score_weighted")


@META_ARCH_REGISTRY.register()
class PaNeXt(nn.Module):
    """Box-free panoptic segmenter of the PanopticFCN family.

    Training inputs carry ``image``, ``instances`` (gt_classes as thing indices, gt_masks,
    gt_boxes) and ``sem_seg`` (stuff indices, ``ignore_value`` elsewhere); see the
    "panext_panoptic" mapper. Inference returns ``panoptic_seg``, ``sem_seg`` and
    ``instances`` in detectron2's formats, with contiguous dataset ids.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        kernel_head: nn.Module,
        position_head: nn.Module,
        hr_processor: nn.Module,
        kernel_in_features: List[str],
        hr_in_features: List[str],
        thing_ids: List[int],
        stuff_ids: List[int],
        pixel_mean,
        pixel_std,
        scale_ranges,
        gaussian_min_overlap: float,
        thing_pos_num: int,
        ignore_value: int,
        position_weight: float,
        segment_weight: float,
        focal_alpha: float,
        focal_gamma: float,
        thing_norm: str,
        dice_form: str,
        stuff_kernels: str = "panopticfcn",
        center_nms_kernel: int = 3,
        thing_score_thresh: float = 0.2,
        stuff_score_thresh: float = 0.1,
        top_k_things: int = 100,
        similarity_thresh: float = 0.9,
        mask_thresh: float = 0.4,
        mask_rescore: bool = True,
        combine_score_thresh: float = 0.2,
        overlap_thresh: float = 0.5,
        stuff_area_limit: int = 4096,
        panoptic_on: bool = True,
        instances_on: bool = True,
        sem_seg_on: bool = True,
    ):
        """
        Args:
            backbone: a detectron2 :class:`Backbone` (backbone + FPN) giving every feature of
                ``kernel_in_features`` and ``hr_in_features`` (``MODEL.BACKBONE.NAME``).
            kernel_head: module mapping the kernel levels to per-level kernel-weight maps
                (B, D, H_l, W_l), D = ``MODEL.PANEXT.KERNEL_DIM`` (:class:`KernelHead`).
            position_head: module mapping the kernel levels to per-level (thing center
                logits (B, C_th, H_l, W_l), stuff region logits (B, C_st, H_l, W_l))
                (:class:`PositionHead`).
            hr_processor: module mapping the ``hr_in_features`` to the (B, D, H/4, W/4)
                high-resolution map (:class:`HRProcessor`).
            kernel_in_features: backbone features of the kernel generator, one level each
                (P3-P7); ``MODEL.PANEXT.KERNEL_IN_FEATURES``.
            hr_in_features: backbone features merged by ``hr_processor`` (P2-P5);
                ``MODEL.PANEXT.HR_IN_FEATURES``.
            thing_ids: contiguous dataset id of each thing head channel, output as
                ``category_id`` / ``pred_classes`` (by config from the first dataset of
                ``DATASETS.TRAIN`` + ``DATASETS.TEST`` with id maps, else
                0..``MODEL.PANEXT.NUM_THING_CLASSES``-1).
            stuff_ids: contiguous dataset id of each stuff head channel (by config as
                ``thing_ids``; without id maps they follow the thing ids).
            pixel_mean, pixel_std: per-channel mean and std (0-255 scale, input channel
                order) used to normalise images; ``MODEL.PIXEL_MEAN`` / ``MODEL.PIXEL_STD``.
            scale_ranges: one (low, high) range of sqrt(box area) in input pixels per kernel
                level, the levels a thing is assigned to in training;
                ``MODEL.PANEXT.TARGETS.THING_SCALE_RANGES``.
            gaussian_min_overlap: minimum IoU of CenterNet's rule for the radius of the
                center heatmap Gaussians; ``MODEL.PANEXT.TARGETS.GAUSSIAN_MIN_OVERLAP``.
            thing_pos_num: k top-scoring positions per thing whose kernels enter the weighted
                Dice loss; ``MODEL.PANEXT.TARGETS.THING_POS_NUM``.
            ignore_value: value of non-stuff pixels in the inputs' ``sem_seg``;
                ``MODEL.PANEXT.TARGETS.IGNORE_VALUE``.
            position_weight: weight of ``loss_pos_th`` and ``loss_pos_st``;
                ``MODEL.PANEXT.LOSS.POSITION_WEIGHT``.
            segment_weight: weight of ``loss_seg``; ``MODEL.PANEXT.LOSS.SEGMENT_WEIGHT``.
            focal_alpha, focal_gamma: alpha and gamma of the position focal losses;
                ``MODEL.PANEXT.LOSS.FOCAL_ALPHA`` / ``FOCAL_GAMMA``.
            thing_norm: normaliser of the thing position loss, "num_thing_classes" (thesis,
                averaged over the batch) or "num_instances" (PanopticFCN);
                ``MODEL.PANEXT.LOSS.THING_NORM``.
            dice_form: Dice of the segmentation loss, "thesis" (eq. 2.6.12) or "panopticfcn";
                ``MODEL.PANEXT.LOSS.DICE_FORM``.
            stuff_kernels: how stuff kernels are pooled, "panopticfcn" (per level, averaged
                over levels at inference) or "score_weighted" (one per region, weighted by
                the predicted scores); ``MODEL.PANEXT.STUFF_KERNELS``.
            center_nms_kernel: max-pool window (cells) of the center-heatmap NMS;
                ``MODEL.PANEXT.INFERENCE.CENTER_NMS_KERNEL``.
            thing_score_thresh: minimum center peak score of a thing candidate;
                ``MODEL.PANEXT.INFERENCE.THING_SCORE_THRESH``.
            stuff_score_thresh: minimum region score of the cells pooled into a stuff kernel;
                ``MODEL.PANEXT.INFERENCE.STUFF_SCORE_THRESH``.
            top_k_things: thing candidates kept per image over all levels and classes, before
                kernel fusion; ``MODEL.PANEXT.INFERENCE.TOP_K_THINGS``.
            similarity_thresh: cosine similarity from which same-class thing kernels are
                fused; ``MODEL.PANEXT.INFERENCE.SIMILARITY_THRESH``.
            mask_thresh: sigmoid probability above which a mask pixel is foreground;
                ``MODEL.PANEXT.INFERENCE.MASK_THRESH``.
            mask_rescore: whether thing scores are multiplied by their maskness (mean
                probability inside the binary mask); ``MODEL.PANEXT.INFERENCE.MASK_RESCORE``.
            combine_score_thresh: minimum (rescored) score of a thing kept in the panoptic
                merge; ``MODEL.PANEXT.INFERENCE.COMBINE_SCORE_THRESH``.
            overlap_thresh: a thing whose mask is covered by already placed things by more
                than this fraction is dropped from the panoptic output;
                ``MODEL.PANEXT.INFERENCE.OVERLAP_THRESH``.
            stuff_area_limit: minimum stuff segment area in output pixels;
                ``MODEL.PANEXT.INFERENCE.STUFF_AREA_LIMIT``.
            panoptic_on, instances_on, sem_seg_on: whether inference returns
                ``panoptic_seg``, ``instances`` and ``sem_seg``;
                ``MODEL.PANEXT.INFERENCE.PANOPTIC_ON`` / ``INSTANCES_ON`` / ``SEM_SEG_ON``.

        The inference defaults are those of ``MODEL.PANEXT.INFERENCE``
        (panext_d2/config/panext.py).
        """
        super().__init__()
        if stuff_kernels not in STUFF_KERNEL_MODES:
            raise ValueError(
                f"MODEL.PANEXT.STUFF_KERNELS={stuff_kernels!r}; expected one of {STUFF_KERNEL_MODES}"
            )
        self.stuff_kernel_mode = stuff_kernels
        self.backbone = backbone
        self.kernel_head = kernel_head
        self.position_head = position_head
        self.hr_processor = hr_processor
        self.kernel_in_features = list(kernel_in_features)
        self.hr_in_features = list(hr_in_features)
        if len(scale_ranges) != len(self.kernel_in_features):
            raise ValueError(
                "MODEL.PANEXT.TARGETS.THING_SCALE_RANGES needs one range per kernel level"
            )
        self.register_buffer("thing_ids", torch.tensor(thing_ids, dtype=torch.long), False)
        self.register_buffer("stuff_ids", torch.tensor(stuff_ids, dtype=torch.long), False)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.scale_ranges = [tuple(r) for r in scale_ranges]
        self.gaussian_min_overlap = gaussian_min_overlap
        self.thing_pos_num = thing_pos_num
        self.ignore_value = ignore_value
        self.position_weight = position_weight
        self.segment_weight = segment_weight
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.thing_norm = thing_norm
        self.dice_form = dice_form
        self.center_nms_kernel = center_nms_kernel
        self.thing_score_thresh = thing_score_thresh
        self.stuff_score_thresh = stuff_score_thresh
        self.top_k_things = top_k_things
        self.similarity_thresh = similarity_thresh
        self.mask_thresh = mask_thresh
        self.mask_rescore = mask_rescore
        self.combine_score_thresh = combine_score_thresh
        self.overlap_thresh = overlap_thresh
        self.stuff_area_limit = stuff_area_limit
        self.panoptic_on = panoptic_on
        self.instances_on = instances_on
        self.sem_seg_on = sem_seg_on
        shapes = backbone.output_shape()
        self.level_strides = [shapes[f].stride for f in self.kernel_in_features]
        self.hr_stride = min(shapes[f].stride for f in self.hr_in_features)
        # sem_seg channels: contiguous ids when thing and stuff ids are disjoint (standard
        # panoptic datasets), otherwise things first then stuff.
        disjoint = not set(thing_ids) & set(stuff_ids)
        channels = (
            thing_ids + stuff_ids if disjoint else list(range(len(thing_ids) + len(stuff_ids)))
        )
        self.register_buffer("sem_channels", torch.tensor(channels, dtype=torch.long), False)
        self.num_sem_channels = max(channels) + 1 if channels else 0

    @classmethod
    def from_config(cls, cfg):
        P = cfg.MODEL.PANEXT
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        missing = [f for f in P.KERNEL_IN_FEATURES + P.HR_IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(f"backbone has no {missing}; it gives {sorted(shapes)}")
        kernel_shapes = [shapes[f] for f in P.KERNEL_IN_FEATURES]
        thing_ids, stuff_ids = class_ids_from_metadata(
            list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST),
            P.NUM_THING_CLASSES,
            P.NUM_STUFF_CLASSES,
        )
        I = P.INFERENCE
        return {
            "backbone": backbone,
            "kernel_head": KernelHead(cfg, kernel_shapes),
            "position_head": PositionHead(cfg, kernel_shapes),
            "hr_processor": HRProcessor(cfg, shapes),
            "kernel_in_features": P.KERNEL_IN_FEATURES,
            "hr_in_features": P.HR_IN_FEATURES,
            "thing_ids": thing_ids,
            "stuff_ids": stuff_ids,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "scale_ranges": P.TARGETS.THING_SCALE_RANGES,
            "gaussian_min_overlap": P.TARGETS.GAUSSIAN_MIN_OVERLAP,
            "thing_pos_num": P.TARGETS.THING_POS_NUM,
            "ignore_value": P.TARGETS.IGNORE_VALUE,
            "position_weight": P.LOSS.POSITION_WEIGHT,
            "segment_weight": P.LOSS.SEGMENT_WEIGHT,
            "focal_alpha": P.LOSS.FOCAL_ALPHA,
            "focal_gamma": P.LOSS.FOCAL_GAMMA,
            "thing_norm": P.LOSS.THING_NORM,
            "dice_form": P.LOSS.DICE_FORM,
            "stuff_kernels": P.STUFF_KERNELS,
            "center_nms_kernel": I.CENTER_NMS_KERNEL,
            "thing_score_thresh": I.THING_SCORE_THRESH,
            "stuff_score_thresh": I.STUFF_SCORE_THRESH,
            "top_k_things": I.TOP_K_THINGS,
            "similarity_thresh": I.SIMILARITY_THRESH,
            "mask_thresh": I.MASK_THRESH,
            "mask_rescore": I.MASK_RESCORE,
            "combine_score_thresh": I.COMBINE_SCORE_THRESH,
            "overlap_thresh": I.OVERLAP_THRESH,
            "stuff_area_limit": I.STUFF_AREA_LIMIT,
            "panoptic_on": I.PANOPTIC_ON,
            "instances_on": I.INSTANCES_ON,
            "sem_seg_on": I.SEM_SEG_ON,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs) -> ImageList:
        images = [
            (x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        levels = [features[f] for f in self.kernel_in_features]
        thing_logits, stuff_logits = self.position_head(levels)
        kernels = flatten_levels(self.kernel_head(levels))  # (B, D, S)
        hr = self.hr_processor({f: features[f] for f in self.hr_in_features})
        if self.training:
            return self.losses(batched_inputs, images, thing_logits, stuff_logits, kernels, hr)
        return self.inference(batched_inputs, images, thing_logits, stuff_logits, kernels, hr)

    def losses(self, batched_inputs, images, thing_logits, stuff_logits, kernels, hr):
        targets = build_targets(
            [x["instances"].to(self.device) for x in batched_inputs],
            [x["sem_seg"].to(self.device) for x in batched_inputs],
            tuple(images.tensor.shape[-2:]),
            [tuple(x.shape[-2:]) for x in thing_logits],
            self.level_strides,
            self.hr_stride,
            len(self.thing_ids),
            len(self.stuff_ids),
            self.scale_ranges,
            self.gaussian_min_overlap,
            self.ignore_value,
        )
        focal = {"alpha": self.focal_alpha, "gamma": self.focal_gamma}
        loss_th = thing_position_loss(
            thing_logits,
            targets.centers,
            num_instances=len(targets.thing_batch),
            num_thing_classes=len(self.thing_ids),
            norm=self.thing_norm,
            **focal,
        )
        loss_st = stuff_position_loss(stuff_logits, targets.stuff_maps, **focal)

        hr = infer.match_size(hr, targets.thing_masks.shape[-2:])
        with torch.no_grad():
            thing_scores = flatten_levels(thing_logits).sigmoid()
            stuff_scores = flatten_levels(stuff_logits).sigmoid()
        positions, weights = select_thing_positions(thing_scores, targets, self.thing_pos_num)
        thing_k = kernels.permute(0, 2, 1)[targets.thing_batch[:, None], positions]  # (M, k, D)
        stuff_k, stuff_objects = training_stuff_kernels(
            self.stuff_kernel_mode, stuff_scores, kernels, targets
        )
        stuff_batch = targets.stuff_batch[stuff_objects]
        m, k = positions.shape
        object_kernels = torch.cat([thing_k.reshape(m * k, kernels.shape[1]), stuff_k])
        owners = torch.cat([targets.thing_batch.repeat_interleave(k), stuff_batch])
        probs = infer.object_masks(object_kernels, owners, hr).sigmoid().flatten(1)
        loss_seg = segmentation_loss(
            probs[: m * k].view(m, k, probs.shape[1]),
            targets.thing_masks.flatten(1),
            weights,
            probs[m * k :],
            targets.stuff_masks[stuff_objects].flatten(1),
            self.dice_form,
        )
        if len(object_kernels) == 0:  # no object: keep every head in the graph (DDP)
            loss_seg = loss_seg + (kernels.float().mean() + hr.float().mean()) * 0
        return {
            "loss_pos_th": self.position_weight * loss_th,
            "loss_pos_st": self.position_weight * loss_st,
            "loss_seg": self.segment_weight * loss_seg,
        }

    def inference_stuff_kernels(self, scores, kernels, sizes, thresh):
        if self.stuff_kernel_mode == "score_weighted":
            return infer.stuff_candidates(scores, kernels, thresh)
        return infer.stuff_candidates_per_level(scores.split(sizes, 1), kernels.split(sizes, 1), thresh)

    def inference(self, batched_inputs, images, thing_logits, stuff_logits, kernels, hr):
        peaks = flatten_levels(infer.center_peaks(thing_logits, self.center_nms_kernel))
        sizes = [x.shape[2] * x.shape[3] for x in stuff_logits]
        stuff_scores = flatten_levels(stuff_logits).sigmoid()
        results = []
        for b, (x, image_size) in enumerate(zip(batched_inputs, images.image_sizes)):
            t_kernels, t_scores, t_classes = infer.top_things(
                peaks[b], kernels[b], self.thing_score_thresh, self.top_k_things
            )
            t_kernels, t_scores, t_classes = infer.fuse_thing_kernels(
                t_kernels, t_scores, t_classes, self.similarity_thresh
            )
            s_kernels, s_scores, s_classes = self.inference_stuff_kernels(
                stuff_scores[b], kernels[b], sizes, self.stuff_score_thresh
            )
            logits = infer.apply_kernels(torch.cat([t_kernels, s_kernels])[None], hr[b : b + 1])[0]
            height = x.get("height", image_size[0])
            width = x.get("width", image_size[1])
            probs = infer.resize_masks(logits, images.tensor.shape[-2:], image_size, (height, width))
            results.append(self.format_outputs(probs, t_scores, t_classes, s_scores, s_classes))
        return results

    def format_outputs(self, probs, t_scores, t_classes, s_scores, s_classes) -> Dict:
        """detectron2 outputs of one image from its thing and stuff mask probabilities."""
        n = len(t_scores)
        t_probs, s_probs = probs[:n], probs[n:]
        t_masks = t_probs > self.mask_thresh
        t_areas = t_masks.flatten(1).sum(1)
        if self.mask_rescore:
            t_scores = t_scores * infer.maskness(t_probs, self.mask_thresh, t_masks, t_areas)
        out = {}
        if self.panoptic_on:
            out["panoptic_seg"] = infer.panoptic_merge(
                t_masks,
                t_scores,
                self.thing_ids[t_classes],
                s_probs,
                self.stuff_ids[s_classes],
                mask_thresh=self.mask_thresh,
                score_thresh=self.combine_score_thresh,
                overlap_thresh=self.overlap_thresh,
                stuff_area_limit=self.stuff_area_limit,
                thing_areas=t_areas,
            )
        if self.sem_seg_on:
            channels = torch.cat(
                [self.sem_channels[t_classes], self.sem_channels[len(self.thing_ids) + s_classes]]
            )
            out["sem_seg"] = infer.semantic_scores(
                probs, torch.cat([t_scores, s_scores]), channels, self.num_sem_channels
            )
        if self.instances_on:
            out["instances"] = infer.thing_instances(t_masks, t_scores, self.thing_ids[t_classes])
        return out
