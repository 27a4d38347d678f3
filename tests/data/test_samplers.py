import itertools

import pytest
import torch

from panext_d2.data.samplers import (
    ForegroundBalancedSampler,
    batches_per_epoch,
    build_train_sampler,
    iterations_for_epochs,
)

N, N_FG, B = 100, 25, 8
FLAGS = [i % 4 == 0 for i in range(N)]  # 25 foreground images (multiples of 4)


def take(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def batches(stream, batch=B):
    return [stream[i : i + batch] for i in range(0, len(stream), batch)]


def fg_count(batch):
    return sum(FLAGS[i] for i in batch)


@pytest.mark.parametrize("mode", ["under", "over"])
def test_every_batch_has_the_share(mode):
    stream = take(
        ForegroundBalancedSampler(FLAGS, B, mode=mode, seed=1, rank=0, world_size=1), 200 * B
    )
    assert all(fg_count(b) == B // 2 for b in batches(stream))
    s = ForegroundBalancedSampler(
        FLAGS, 10, mode=mode, foreground_share=0.3, seed=1, rank=0, world_size=1
    )
    assert all(fg_count(b) == 3 for b in batches(take(s, 500), 10))


def test_under_sampling_epoch():
    s = ForegroundBalancedSampler(FLAGS, B, mode="under", seed=0, rank=0, world_size=1)
    assert s.epoch_batches == N_FG // (B // 2) == 6
    epoch_len = s.epoch_batches * B  # 48 ~ 2 * N_minority
    stream = take(s, 40 * epoch_len)
    first = stream[:epoch_len]
    assert len(set(first)) == epoch_len  # no repeats inside an epoch
    fg_first = {i for i in first if FLAGS[i]}
    assert len(fg_first) == 24  # all but the remainder of 25 fg images
    # the majority is redrawn every epoch: different empty images, all seen eventually
    bg = [
        {i for i in stream[e * epoch_len : (e + 1) * epoch_len] if not FLAGS[i]} for e in range(40)
    ]
    assert bg[0] != bg[1]
    assert set().union(*bg) == {i for i in range(N) if not FLAGS[i]}


def test_over_sampling_epoch():
    s = ForegroundBalancedSampler(FLAGS, B, mode="over", seed=0, rank=0, world_size=1)
    assert s.epoch_batches == -(-75 // 4) == 19
    first = take(s, s.epoch_batches * B)
    bg = [i for i in first if not FLAGS[i]]
    assert set(bg) == {i for i in range(N) if not FLAGS[i]}  # majority used in full
    assert len([i for i in first if FLAGS[i]]) == 76  # minority drawn with replacement


def test_random_sampling_follows_base_rate():
    s = ForegroundBalancedSampler(FLAGS, B, mode="random", seed=0, rank=0, world_size=1)
    assert s.epoch_batches == N // B
    stream = take(s, 600 * B)
    share = sum(FLAGS[i] for i in stream) / len(stream)
    assert abs(share - 0.25) < 0.02
    counts = [fg_count(b) for b in batches(stream)]
    assert len(set(counts)) > 3  # not balanced per batch
    first = stream[: s.epoch_batches * B]
    assert len(set(first)) == len(first)


@pytest.mark.parametrize("mode", ["random", "under", "over"])
def test_determinism(mode):
    a = take(ForegroundBalancedSampler(FLAGS, B, mode=mode, seed=5, rank=0, world_size=1), 500)
    b = take(ForegroundBalancedSampler(FLAGS, B, mode=mode, seed=5, rank=0, world_size=1), 500)
    c = take(ForegroundBalancedSampler(FLAGS, B, mode=mode, seed=6, rank=0, world_size=1), 500)
    assert a == b and a != c


@pytest.mark.parametrize("mode", ["random", "under", "over"])
def test_two_ranks(mode):
    ranks = [
        ForegroundBalancedSampler(FLAGS, 4, mode=mode, seed=3, rank=r, world_size=2)
        for r in range(2)
    ]
    assert ranks[0].epoch_batches == ranks[1].epoch_batches
    per_epoch = ranks[0].epoch_batches * 4
    streams = [take(s, 50 * per_epoch) for s in ranks]
    assert streams[0] != streams[1]
    if mode != "random":
        for stream in streams:
            assert all(fg_count(b) == 2 for b in batches(stream, 4))
    # disjoint within an epoch (over-sampling repeats only the drawn-with-replacement minority)
    for e in range(3):
        parts = [set(s[e * per_epoch : (e + 1) * per_epoch]) for s in streams]
        common = parts[0] & parts[1]
        if mode == "over":  # plus the few majority images that pad the last batch
            padding = ranks[0].epoch_batches * 2 * 2 - 75
            assert sum(not FLAGS[i] for i in common) <= padding == 1
        else:
            assert not common
    if mode == "under":
        assert ranks[0].epoch_batches == 25 // (2 * 2)


def test_iterations_for_epochs():
    # SIIM-ACR train (Andrade (2021) §7.1.1): 8647 images, 24.25% foreground; batch 16, 30 epochs
    fg, bg = 2097, 8647 - 2097
    assert iterations_for_epochs(30, fg, bg, 16, "under") == 30 * (2097 // 8) == 7860
    assert iterations_for_epochs(30, fg, bg, 16, "over") == 30 * -(-6550 // 8) == 24570
    assert iterations_for_epochs(30, fg, bg, 16, "random") == 30 * (8647 // 16) == 16200
    # the helper agrees with the sampler, also with several processes
    s = ForegroundBalancedSampler(
        [True] * fg + [False] * bg, 4, mode="under", seed=0, rank=1, world_size=4
    )
    assert iterations_for_epochs(1, fg, bg, 16, "under", world_size=4) == s.epoch_batches
    assert batches_per_epoch(3, 100, 8, "under") == 1  # fewer minority images than a batch needs
    with pytest.raises(ValueError):
        batches_per_epoch(0, 100, 8, "under")


def test_build_train_sampler_and_loader(cfg):
    from detectron2.data import build_detection_train_loader

    dicts = [
        {"file_name": f"{i}.png", "foreground_classes": [1] if FLAGS[i] else []} for i in range(N)
    ]
    assert build_train_sampler(cfg, dicts) is None  # detectron2's TrainingSampler stays default
    cfg.DATALOADER.SAMPLER_TRAIN = "ForegroundBalancedSampler"
    cfg.SOLVER.IMS_PER_BATCH = B
    cfg.SEED = 7
    sampler = build_train_sampler(cfg, dicts)
    assert isinstance(sampler, ForegroundBalancedSampler) and sampler.mode == "under"
    for workers in (0, 2):
        cfg.DATALOADER.NUM_WORKERS = workers
        loader = build_detection_train_loader(
            cfg, mapper=lambda d: d, dataset=dicts, sampler=sampler, aspect_ratio_grouping=False
        )
        got = list(itertools.islice(iter(loader), 12))
        assert all(
            len(b) == B and sum(bool(d["foreground_classes"]) for d in b) == B // 2 for b in got
        )
    with pytest.raises(KeyError, match="foreground_classes"):
        build_train_sampler(cfg, [{"file_name": "x.png"}])
