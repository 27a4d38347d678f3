"""Inference pieces: center NMS, kernel fusion, stuff kernels, panoptic merge."""

import pytest
import torch

from panext_d2.modeling.panext import inference as infer


def test_center_peaks_keep_local_maxima_only():
    logits = torch.full((1, 1, 4, 4), -5.0)
    logits[0, 0, 1, 1], logits[0, 0, 1, 2], logits[0, 0, 3, 3] = 3.0, 2.0, 1.0
    peaks = infer.center_peaks([logits], 3)[0][0, 0]
    assert (peaks > 0.1).nonzero().tolist() == [[1, 1], [3, 3]]
    assert peaks[1, 2] == 0  # next to a higher peak
    assert peaks[1, 1].item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_top_things_thresholds_and_sorts():
    scores = torch.tensor([[0.1, 0.5, 0.0], [0.9, 0.0, 0.3]])  # (C=2, S=3)
    kernels = torch.arange(6.0).view(2, 3)  # (D=2, S=3)
    k, s, c = infer.top_things(scores, kernels, thresh=0.2, top_k=2)
    assert s.tolist() == pytest.approx([0.9, 0.5]) and c.tolist() == [1, 0]
    assert k.tolist() == [[0.0, 3.0], [1.0, 4.0]]


def test_kernel_fusion_groups_the_expected_kernels():
    kernels = torch.tensor(
        [
            [1.0, 0.0],  # 0 leader of {0, 1, 4}
            [0.99, 0.1],  # 1 similar to 0, same class
            [0.0, 1.0],  # 2 same class, orthogonal: own group
            [1.0, 0.05],  # 3 similar direction, other class: own group
            [2.0, 0.3],  # 4 similar to 0 and 1 (cosine ignores the norm)
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = torch.tensor([0, 0, 0, 1, 0])
    fused, s, c = infer.fuse_thing_kernels(kernels, scores, classes, 0.9)
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.6]) and c.tolist() == [0, 0, 1]
    assert torch.allclose(fused[0], kernels[[0, 1, 4]].mean(0))
    assert torch.equal(fused[1], kernels[2]) and torch.equal(fused[2], kernels[3])


def test_kernel_fusion_of_nothing():
    fused, s, c = infer.fuse_thing_kernels(
        torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.9
    )
    assert fused.shape == (0, 4) and len(s) == len(c) == 0


def test_stuff_candidates_average_kernels_over_each_region():
    scores = torch.tensor([[0.5, 0.05, 0.25], [0.0, 0.0, 0.05]])  # class 1 is below 0.1
    kernels = torch.tensor([[2.0, 100.0, 8.0]])
    k, s, c = infer.stuff_candidates(scores, kernels, 0.1)
    assert c.tolist() == [0]
    assert k[0, 0].item() == pytest.approx((0.5 * 2 + 0.25 * 8) / 0.75)
    assert s.item() == pytest.approx(0.375)


def test_panoptic_merge_is_valid_and_follows_the_rules():
    h, w = 10, 10
    things = torch.zeros(4, h, w, dtype=torch.bool)
    things[0, 0:5, 0:5] = True  # score 0.9, kept
    things[1, 0:5, 1:6] = True  # 80% under thing 0: dropped
    things[2, 4:8, 4:8] = True  # 1 of 16 px under thing 0: kept
    things[3, 8:10, 8:10] = True  # score below the threshold
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    ids = torch.tensor([5, 6, 7, 8])
    stuff = torch.zeros(2, h, w)
    stuff[0, :, :5] = 0.9
    stuff[1, :, 5:] = 0.8
    stuff[1, 9, 9] = 0.3  # below the mask threshold: void
    pan, segments = infer.panoptic_merge(
        things,
        scores,
        ids,
        stuff,
        torch.tensor([20, 21]),
        mask_thresh=0.4,
        score_thresh=0.2,
        overlap_thresh=0.5,
        stuff_area_limit=10,
    )
    by_id = {s["id"]: s for s in segments}
    assert set(pan.unique().tolist()) == set(by_id) | {0}
    assert [s["category_id"] for s in segments] == [5, 7, 20, 21]
    assert [s["isthing"] for s in segments] == [True, True, False, False]
    assert all(type(s["isthing"]) is bool for s in segments)
    assert (pan == 1).sum() == 25 and (pan == 2).sum() == 15
    assert pan[9, 9] == 0
    stuff_left = (pan == 3).sum().item()
    assert stuff_left == 50 - 25 - 3  # left half minus thing 0 and column 4 of thing 2


def test_stuff_below_the_area_limit_is_void():
    stuff = torch.zeros(1, 4, 4)
    stuff[0, :2, :2] = 0.9
    pan, segments = infer.panoptic_merge(
        torch.zeros(0, 4, 4, dtype=torch.bool),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        stuff,
        torch.tensor([3]),
        mask_thresh=0.4,
        score_thresh=0.2,
        overlap_thresh=0.5,
        stuff_area_limit=5,
    )
    assert segments == [] and pan.max() == 0


def test_semantic_scores_take_the_max_per_class():
    probs = torch.tensor([[[1.0, 0.5]], [[0.2, 1.0]], [[1.0, 1.0]]])
    sem = infer.semantic_scores(probs, torch.tensor([0.5, 0.9, 0.3]), torch.tensor([2, 2, 0]), 3)
    assert sem[2, 0].tolist() == pytest.approx([0.5, 0.9])
    assert sem[0, 0].tolist() == pytest.approx([0.3, 0.3]) and sem[1].abs().sum() == 0


def test_apply_kernels_is_a_batched_1x1_conv():
    kernels, features = torch.randn(2, 3, 4), torch.randn(2, 4, 5, 6)
    out = infer.apply_kernels(kernels, features)
    ref = torch.stack(
        [
            torch.nn.functional.conv2d(features[b : b + 1], kernels[b][:, :, None, None])[0]
            for b in range(2)
        ]
    )
    assert torch.allclose(out, ref, atol=1e-6)


def test_kernel_fusion_assigns_each_kernel_to_one_group_only():
    """PanopticFCN's kernel_fusion: leaders L1 > L2 at 50 degrees (not similar at 0.9) and a
    kernel M halfway (cos 0.906 with both): M joins L1's group only. A chain A > B > C at 0,
    20, 40 degrees: C's only claimer B is itself claimed, so C joins no group."""
    import math

    def unit(degrees):
        return torch.tensor([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])

    zeros = torch.zeros(3, dtype=torch.long)
    scores = torch.tensor([0.9, 0.8, 0.7])
    fused, s, _ = infer.fuse_thing_kernels(torch.stack([unit(0), unit(50), unit(25)]), scores, zeros, 0.9)
    assert s.tolist() == pytest.approx([0.9, 0.8])
    assert torch.allclose(fused[0], (unit(0) + unit(25)) / 2) and torch.allclose(fused[1], unit(50))
    fused, s, _ = infer.fuse_thing_kernels(torch.stack([unit(0), unit(20), unit(40)]), scores, zeros, 0.9)
    assert s.tolist() == pytest.approx([0.9]) and torch.allclose(fused[0], (unit(0) + unit(20)) / 2)


def test_stuff_candidates_per_level_follow_panopticfcn():
    """Per level: region = score > thresh, kernel = region sum / level cells, score = region
    mean; then the mean over the levels where the class has a region."""
    scores = [torch.tensor([[0.5, 0.05, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]]),  # level 0: 4 cells
              torch.tensor([[0.3, 0.0], [0.02, 0.0]])]  # level 1: 2 cells
    kernels = [torch.tensor([[2.0, 100.0, 8.0, 50.0]]), torch.tensor([[4.0, 7.0]])]
    k, s, c = infer.stuff_candidates_per_level(scores, kernels, 0.1)
    assert c.tolist() == [0]
    assert k[0, 0].item() == pytest.approx(((2 + 8) / 4 + 4 / 2) / 2)
    assert s.item() == pytest.approx(((0.5 + 0.25) / 2 + 0.3) / 2)
