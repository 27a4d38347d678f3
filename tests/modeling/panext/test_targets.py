"""Training targets: center heatmaps, level assignment, stuff maps, top-k positions."""

import math
import os

import numpy as np
import pytest
import torch
from detectron2.structures import BitMasks, Instances

from panext_d2.data.mappers.panext import PaNeXtPanopticMapper
from panext_d2.modeling.panext.targets import (
    assign_levels,
    build_targets,
    gaussian_radius,
    select_thing_positions,
    stuff_kernels,
)
from tests.conftest import COCO_SAMPLES

RANGES = ((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048))
STRIDES = [8, 16, 32, 64, 128]


def coco_sample_inputs():
    """Both real samples through the mapper at short edge 256 (no flip), decoded directly
    from the panoptic JSON so that the test needs no dataset registration."""
    import json

    from detectron2.data import transforms as T

    with open(os.path.join(COCO_SAMPLES, "panoptic_examples.json")) as f:
        data = json.load(f)
    cats = {c["id"]: c for c in data["categories"]}
    things = sorted(c for c in cats if cats[c]["isthing"])
    stuff = sorted(c for c in cats if not cats[c]["isthing"])
    mapper = PaNeXtPanopticMapper(
        True,
        augmentations=[T.ResizeShortestEdge((256,), 1000, "choice")],
        image_format="BGR",
        thing_index={c: i for i, c in enumerate(things)},
        stuff_index={c: i for i, c in enumerate(stuff)},
    )
    images = {im["id"]: im for im in data["images"]}
    out = []
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        segments = [
            dict(s, isthing=bool(cats[s["category_id"]]["isthing"])) for s in ann["segments_info"]
        ]
        out.append(
            mapper(
                {
                    "file_name": os.path.join(COCO_SAMPLES, "images", im["file_name"]),
                    "pan_seg_file_name": os.path.join(COCO_SAMPLES, "panoptic", ann["file_name"]),
                    "height": im["height"],
                    "width": im["width"],
                    "segments_info": segments,
                }
            )
        )
    return out, len(things), len(stuff)


@pytest.fixture(scope="module")
def coco_targets():
    inputs, n_things, n_stuff = coco_sample_inputs()
    hp = max(x["image"].shape[1] for x in inputs)
    wp = max(x["image"].shape[2] for x in inputs)
    hp, wp = math.ceil(hp / 128) * 128, math.ceil(wp / 128) * 128
    sizes = [(hp // s, wp // s) for s in STRIDES]
    targets = build_targets(
        [x["instances"] for x in inputs],
        [x["sem_seg"] for x in inputs],
        (hp, wp),
        sizes,
        STRIDES,
        4,
        n_things,
        n_stuff,
        RANGES,
        0.7,
        255,
    )
    return inputs, targets, sizes


def test_centers_sit_on_mask_centroids_with_peak_one(coco_targets):
    inputs, targets, sizes = coco_targets
    m = 0
    for b, x in enumerate(inputs):
        inst = x["instances"]
        boxes = inst.gt_boxes.tensor
        scales = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        levels = assign_levels(scales, RANGES)
        for i, mask in enumerate(inst.gt_masks.tensor.numpy()):
            ys, xs = np.nonzero(mask)
            cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
            for lvl in levels[i].nonzero()[:, 0].tolist():
                h, w = sizes[lvl]
                ix, iy = min(int(cx // STRIDES[lvl]), w - 1), min(int(cy // STRIDES[lvl]), h - 1)
                heat = targets.centers[lvl][b, inst.gt_classes[i]]
                assert heat[iy, ix].item() == pytest.approx(1.0)
                assert targets.thing_regions[m + i].view(-1).any()
        m += len(inst)
    assert len(targets.thing_batch) == m
    for heat in targets.centers:
        assert heat.min() >= 0 and heat.max() <= 1


def test_every_thing_has_a_region_only_at_its_levels(coco_targets):
    inputs, targets, sizes = coco_targets
    offsets = np.cumsum([0] + [h * w for h, w in sizes])
    boxes = torch.cat([x["instances"].gt_boxes.tensor for x in inputs])
    levels = assign_levels(
        ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt(), RANGES
    )
    per_level = torch.stack(
        [targets.thing_regions[:, offsets[i] : offsets[i + 1]].any(1) for i in range(len(sizes))],
        dim=1,
    )
    assert torch.equal(per_level, levels)


def test_stuff_maps_are_one_hot(coco_targets):
    inputs, targets, _ = coco_targets
    for maps in targets.stuff_maps:
        assert set(maps.unique().tolist()) <= {0.0, 1.0}
        assert maps.sum(1).max() <= 1
    # The stride-8 map has the stuff classes of the images (none is too small here).
    for b, x in enumerate(inputs):
        present = set(x["sem_seg"].unique().tolist()) - {255}
        found = set(targets.stuff_maps[0][b].flatten(1).any(1).nonzero()[:, 0].tolist())
        assert found <= present and len(found) >= len(present) - 1
    assert targets.stuff_masks.shape[0] == len(targets.stuff_classes)
    assert set(targets.stuff_masks.unique().tolist()) <= {0.0, 1.0}


def test_gaussian_radius_matches_centernet_reference():
    def reference(h, w, mo=0.7):
        b1 = h + w
        c1 = w * h * (1 - mo) / (1 + mo)
        r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
        b2 = 2 * (h + w)
        c2 = (1 - mo) * w * h
        r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
        a3, b3, c3 = 4 * mo, -2 * mo * (h + w), (mo - 1) * w * h
        r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
        return min(r1, r2, r3)

    hs, ws = torch.tensor([3.0, 10.0, 40.0]), torch.tensor([5.0, 10.0, 7.0])
    got = gaussian_radius(hs, ws, 0.7)
    assert got.tolist() == pytest.approx(
        [reference(h, w) for h, w in zip(hs.tolist(), ws.tolist())]
    )


def test_level_assignment_uses_overlapping_ranges():
    levels = assign_levels(torch.tensor([10.0, 50.0, 100.0, 3000.0, 0.5]), RANGES)
    assert levels.int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0],
    ]


def test_peak_and_gaussian_shape_on_a_square():
    inst = Instances((64, 64))
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 8:56, 8:56] = True
    inst.gt_masks = BitMasks(mask)
    inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
    inst.gt_classes = torch.tensor([1])
    sem = torch.full((64, 64), 255)
    t = build_targets(
        [inst], [sem], (64, 64), [(8, 8), (4, 4)], [8, 16], 4, 2, 1, ((1, 64), (64, 128)), 0.7, 255
    )
    heat = t.centers[0][0, 1]
    assert heat[4, 4] == 1 and heat.max() == 1  # centroid (32, 32) -> cell 4 at stride 8
    radius = int(gaussian_radius(torch.tensor(6.0), torch.tensor(6.0), 0.7))
    sigma = (2 * radius + 1) / 6
    assert radius >= 1
    assert heat[4, 3].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert heat[4, 3] == heat[3, 4] == heat[5, 4]
    assert heat[4, 4 - radius - 1] == 0  # outside the (2r+1)^2 window
    assert t.centers[1].max() == 0 and t.centers[0][0, 0].max() == 0
    assert t.thing_masks.shape == (1, 16, 16) and t.thing_masks.sum() == 144  # 48x48 px / 4x4
    assert t.stuff_masks.shape[0] == 0


def test_top_k_positions_stay_inside_the_region_and_weights_normalise():
    scores = torch.tensor(
        [[[0.9, 0.8, 0.7, 0.95, 0.1]], [[0.2, 0.3, 0.4, 0.5, 0.6]]]
    )  # (B=2, C=1, S=5)

    class T:
        thing_batch = torch.tensor([0, 1])
        thing_classes = torch.tensor([0, 0])
        thing_regions = torch.tensor(
            [[True, True, True, False, True], [False, False, False, False, True]]
        )

    positions, weights = select_thing_positions(scores, T, k=3)
    assert positions[0].tolist() == [0, 1, 2]
    assert weights[0].tolist() == pytest.approx([0.9 / 2.4, 0.8 / 2.4, 0.7 / 2.4])
    assert positions[1, 0] == 4 and weights[1].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_stuff_kernels_are_score_weighted_region_means():
    scores = torch.tensor([[[0.5, 1.0, 0.2]]])
    regions = torch.tensor([[[1.0, 1.0, 0.0]]])
    kernels = torch.tensor([[[2.0, 4.0, 100.0]]])  # D = 1
    avg, total = stuff_kernels(scores, regions, kernels)
    assert avg.item() == pytest.approx((0.5 * 2 + 1.0 * 4) / 1.5)
    assert total.item() == pytest.approx(1.5)


def test_stuff_kernels_per_level_average_over_the_whole_level():
    from panext_d2.modeling.panext.targets import stuff_kernels_per_level

    regions = [torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]),
               torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])]
    kernels = [torch.tensor([[[1.0, 3.0, 5.0, 7.0]]]), torch.tensor([[[2.0, 6.0]]])]
    pooled, present = stuff_kernels_per_level(regions, kernels)
    assert pooled.shape == (2, 1, 2, 1)
    assert pooled[0, 0, :, 0].tolist() == pytest.approx([(1 + 3) / 4, 0.0])
    assert pooled[1, 0, :, 0].tolist() == pytest.approx([2 / 2, 6 / 2])
    assert present.tolist() == [[[True, False]], [[True, True]]]


def test_stuff_kernels_do_not_overflow_in_float16():
    """A stuff region of ~10k cells with kernel values of 100: the float16 sum (1e6) would be
    inf (> 65,504); the pooling runs in float32."""
    from panext_d2.modeling.panext.targets import stuff_kernels, stuff_kernels_per_level

    regions = torch.ones(1, 2, 96 * 100, dtype=torch.float16)
    kernels = torch.full((1, 4, 96 * 100), 100.0, dtype=torch.float16)
    pooled, _ = stuff_kernels_per_level([regions], [kernels])
    assert torch.isfinite(pooled).all() and pooled[0, 0, 0, 0] == 100.0
    weighted, _ = stuff_kernels(regions, regions, kernels)
    assert torch.isfinite(weighted).all() and weighted[0, 0, 0] == 100.0
