"""Ranks of elements within their groups, as one sort instead of a loop over groups."""
import torch

__all__ = ["rank_in_group"]


def rank_in_group(group: torch.Tensor, num_groups: int = 0) -> torch.Tensor:
    """Position of each element among the elements of its group (non-negative ids), in the
    order given: ``[2, 0, 2, 2, 0] -> [0, 0, 1, 2, 1]``."""
    order = torch.sort(group, stable=True).indices
    counts = torch.bincount(group, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(group)
    rank[order] = torch.arange(group.numel(), device=group.device) - starts[group[order]]
    return rank
