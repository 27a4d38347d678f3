"""Image-level batch sampling for datasets dominated by empty images (Andrade (2021) §2.4.1, §8.1).

:class:`ForegroundBalancedSampler` is an infinite, seeded, DDP-aware ``torch`` sampler of
dataset indices. Every process receives its own stream, and every run of ``batch_size``
consecutive indices of a stream is one batch holding exactly ``round(share * batch_size)``
foreground images (modes "under" and "over"):

* ``"random"``: the baseline; each epoch is a fresh permutation of all N images;
* ``"under"`` (Andrade 2021, §8.1: the default): each epoch uses the limiting class in full and draws the
  other class without replacement, anew every epoch. With share 50% and foreground as the
  minority this is the thesis' epoch of 2 * N_minority images, the majority redrawn each time;
* ``"over"``: each epoch uses the larger class in full and draws the smaller one with
  replacement, so an epoch has 2 * N_majority images at share 50%.

All processes derive the same global plan from one seed (``cfg.SEED``, or a seed shared
through detectron2's comm when negative); process ``rank`` takes its ``batch_size`` slice of
every global batch, so the streams are disjoint within an epoch (up to the repeats that
over-sampling makes by design). Leftovers that do not fill a global batch are dropped, and
they differ from epoch to epoch.

"Epochs" in Andrade (2021) §7.3.4 (30 for SIIM-ACR, 37 for COCO BikeCar) count these sampling
epochs; :func:`iterations_for_epochs` turns them into ``SOLVER.MAX_ITER``. Example: SIIM-ACR
train, 8 647 images of which 2 097 (24.25%) are foreground, batch 16, share 50%, one process:
an under-sampling epoch is 2 097 // 8 = 262 iterations (4 192 images ~ 2 * N_min), so 30
epochs are 7 860 iterations; random sampling gives 8 647 // 16 = 540 per epoch (16 200); over-
sampling 6 550 / 8 = 819 per epoch (24 570).

Wiring (the loader must keep the sampler's order, so no aspect-ratio grouping)::

    dicts = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
    sampler = build_train_sampler(cfg, dicts)   # None unless SAMPLER_TRAIN selects ours
    if sampler is not None:
        return build_detection_train_loader(cfg, mapper=mapper, dataset=dicts,
                                            sampler=sampler, aspect_ratio_grouping=False)

With data-loader workers, detectron2 shards the stream in chunks of the per-process batch
size (``ToIterableDataset(shard_chunk_size=batch_size)``), so each batch is still one chunk.
"""

import itertools
import math
from typing import Iterator, Optional, Sequence

import torch
from detectron2.data import MetadataCatalog
from detectron2.utils import comm
from torch.utils.data import Sampler

from .foreground import foreground_classes

SAMPLER_NAME = "ForegroundBalancedSampler"
MODES = ("random", "under", "over")


def _per_batch_counts(batch_size: int, share: float):
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"foreground share must be in [0, 1], got {share}")
    num_fg = int(round(share * batch_size))
    return num_fg, batch_size - num_fg


def batches_per_epoch(num_foreground, num_background, batch_size, mode, share=0.5, world_size=1):
    """Global batches (= iterations) in one sampling epoch; ``batch_size`` is per process."""
    if mode not in MODES:
        raise ValueError(f"sampling mode {mode!r}; expected one of {MODES}")
    global_batch = batch_size * world_size
    if mode == "random":
        return max(1, (num_foreground + num_background) // global_batch)
    k_fg, k_bg = _per_batch_counts(batch_size, share)
    demands = [
        (n, k * world_size) for n, k in ((num_foreground, k_fg), (num_background, k_bg)) if k
    ]
    if any(n == 0 for n, _ in demands):
        raise ValueError(
            f"a foreground share of {share} needs both image kinds, but the dataset has "
            f"{num_foreground} foreground and {num_background} empty images"
        )
    if mode == "under":
        return max(1, min(n // g for n, g in demands))
    return max(math.ceil(n / g) for n, g in demands)


def iterations_for_epochs(
    epochs, num_foreground, num_background, ims_per_batch, mode="under", share=0.5, world_size=1
):
    """``SOLVER.MAX_ITER`` for ``epochs`` sampling epochs; ``ims_per_batch`` is the total
    batch (``SOLVER.IMS_PER_BATCH``), split evenly over ``world_size`` processes."""
    if ims_per_batch % world_size:
        raise ValueError(
            f"IMS_PER_BATCH={ims_per_batch} is not divisible by {world_size} processes"
        )
    per_epoch = batches_per_epoch(
        num_foreground, num_background, ims_per_batch // world_size, mode, share, world_size
    )
    return int(round(epochs * per_epoch))


class ForegroundBalancedSampler(Sampler):
    """Infinite index stream for one process; see the module docstring."""

    def __init__(
        self,
        is_foreground: Sequence[bool],
        batch_size: int,
        *,
        mode: str = "under",
        foreground_share: float = 0.5,
        seed: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        """
        Args:
            is_foreground: one flag per dataset index.
            batch_size: images per batch of this process (IMS_PER_BATCH // world size).
            seed: shared by all processes; None draws one shared through detectron2's comm.
            rank, world_size: default to detectron2's comm values.
        """
        if mode not in MODES:
            raise ValueError(f"sampling mode {mode!r}; expected one of {MODES}")
        flags = torch.as_tensor(list(is_foreground), dtype=torch.bool)
        self.foreground = torch.nonzero(flags).flatten()
        self.background = torch.nonzero(~flags).flatten()
        self.size = len(flags)
        self.batch_size = int(batch_size)
        self.mode = mode
        self.share = float(foreground_share)
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside a world of {self.world_size}")
        self.k_fg, self.k_bg = _per_batch_counts(self.batch_size, self.share)
        self.epoch_batches = batches_per_epoch(
            len(self.foreground),
            len(self.background),
            self.batch_size,
            mode,
            self.share,
            self.world_size,
        )
        # Over-sampling: the kind that sets the epoch length (0 foreground, 1 background) is
        # used in full; the other one is drawn with replacement (Andrade 2021, §2.4.1).
        self._pools = ((self.foreground, self.k_fg), (self.background, self.k_bg))
        need = [math.ceil(len(pool) / k) if k else 0 for pool, k in self._pools]
        self._used_in_full = int(need[1] > need[0])

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        for _ in itertools.count():
            yield from self._epoch(generator)[:, self.rank].flatten().tolist()

    def _epoch(self, g):
        """The global plan of one epoch: (batches, world_size, batch_size) dataset indices."""
        n, w = self.epoch_batches, self.world_size
        if self.mode == "random":
            perm = _cycled_permutation(self.size, n * w * self.batch_size, g)
            return perm.view(n, w, self.batch_size)
        parts = []
        for kind, (pool, k) in enumerate(self._pools):
            count = n * w * k
            if self.mode == "over" and kind != self._used_in_full and count:
                picks = torch.randint(len(pool), (count,), generator=g)
            else:
                picks = _cycled_permutation(len(pool), count, g)
            parts.append(pool[picks].view(n, w, k))
        plan = torch.cat(parts, dim=2)
        order = torch.rand(plan.shape, generator=g).argsort(dim=2)  # mix fg / bg in a batch
        return plan.gather(2, order)


def _cycled_permutation(size, count, g):
    """``count`` indices in [0, size): fresh permutations back to back, so every index is
    used as evenly as possible (a plain draw without replacement when count <= size)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    reps = math.ceil(count / size)
    return torch.cat([torch.randperm(size, generator=g) for _ in range(reps)])[:count]


def build_train_sampler(cfg, dataset_dicts):
    """Our sampler when ``cfg.DATALOADER.SAMPLER_TRAIN == "ForegroundBalancedSampler"``,
    otherwise None (detectron2 then builds the sampler SAMPLER_TRAIN names)."""
    if cfg.DATALOADER.SAMPLER_TRAIN != SAMPLER_NAME:
        return None
    world_size = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not divisible by {world_size} processes"
        )
    sampling = cfg.DATALOADER.FOREGROUND_SAMPLING
    names = cfg.DATASETS.TRAIN
    ignore_value = MetadataCatalog.get(names[0]).get("ignore_label", 255) if len(names) else 255
    classes = foreground_classes(dataset_dicts, ignore_value=ignore_value)
    return ForegroundBalancedSampler(
        [len(c) > 0 for c in classes],
        cfg.SOLVER.IMS_PER_BATCH // world_size,
        mode=sampling.MODE,
        foreground_share=sampling.FOREGROUND_SHARE,
        seed=cfg.SEED if cfg.SEED >= 0 else None,
    )
