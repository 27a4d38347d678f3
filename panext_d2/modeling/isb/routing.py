"""Which branch segments which box (Kolhatkar (2020) §3.1.4, §3.1.5, §3.2.1, §5.2).

A variant is a table of branches (:class:`BranchSpec`: input shape in stride-32 cells,
whether crops of other shapes are resized to it, whether the resize is Mask R-CNN's
crop-at-2x + 2x2 max-pool, box cap) plus an assignment rule from a box's encompassing
shape (h, w) to a branch:

==================== ============================================ =======================
variant              branches                                     rule
==================== ============================================ =======================
single_branch        one 10x10 resize branch, 2x crop + max-pool  every box
single_shape         one exact branch per shape of Table 5.1      exact shape, else none
single_shape_plus    the above + one 14x14 resize branch          exact, else the 14x14
multi_shape          resize branches at the size thresholds       the first threshold (the
                     (15x10, 9x4, ...; NewShapes, SmallShapes     list is largest first)
                     are other threshold lists)                   that fits inside the box
==================== ============================================ =======================

Multi-Shape resizes each box *down* to the largest threshold that fits inside it
("resizing all boxes to the next smallest threshold in the list", chosen because it
"reduces the memory cost", §3.1.5); a box larger than the first threshold also goes to it
(MS-SmallShapes "predict[s] all objects larger than 10x10 in the 10x10 ISB", §5.2.4).
A box no threshold fits gets no mask (never the case when the list ends with 1x1).

Each branch takes at most ``max_boxes`` boxes per image, in the order given (ground-truth
order in training, decreasing score at inference): 100 for Single-Branch, 30 for every
branch of the multi-branch variants (§3.2.1 "Number of Boxes per Branch").

Assignment is one broadcast comparison of the (M, 2) shapes against the (S, 2) table, and
the per-image caps one stable sort; nothing loops over boxes.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from ...utils.grouping import rank_in_group

__all__ = ["BranchSpec", "ISBRouting", "build_isb_routing", "ISB_VARIANTS"]

ISB_VARIANTS = ("single_branch", "single_shape", "single_shape_plus", "multi_shape")
_RULES = ("all", "exact", "exact_then_rest", "largest_fit")


@dataclass(frozen=True)
class BranchSpec:
    """shape: branch input (h, w) in stride-32 cells; resize: crops of other shapes are
    resized to ``shape`` (otherwise only boxes of exactly that shape reach it); pool: resize
    to twice ``shape`` then 2x2 max-pool; max_boxes: boxes per image."""

    shape: Tuple[int, int]
    resize: bool = True
    pool: bool = False
    max_boxes: int = 30


class ISBRouting:
    def __init__(self, branches: Sequence[BranchSpec], rule: str, variant: str = ""):
        """
        Args:
            branches: the branch table.
            rule: "all" (one branch takes every box), "exact" (the branch of the box's
                exact shape), "exact_then_rest" (exact shape among all branches but the
                last, which takes the remaining boxes), "largest_fit" (the first branch, in
                table order, whose shape fits inside the box).
            variant: name, for display and the multi-branch test.
        """
        if rule not in _RULES:
            raise ValueError(f"unknown routing rule {rule!r}; expected one of {_RULES}")
        if not branches:
            raise ValueError("an ISB variant needs at least one branch")
        if rule == "all" and len(branches) != 1:
            raise ValueError("rule 'all' takes exactly one branch")
        self.branches = tuple(branches)
        self.rule = rule
        self.variant = variant
        self._table = torch.tensor([b.shape for b in self.branches], dtype=torch.int64)
        self._caps = torch.tensor([b.max_boxes for b in self.branches], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.branches)

    @property
    def is_multi_branch(self) -> bool:
        """Multi-branch variants use their own mask-loss weight (§3.2.1 "Loss Weights")."""
        return self.rule != "all"

    def __repr__(self) -> str:
        shapes = ", ".join(f"{h}x{w}" for h, w in self._table.tolist())
        return f"ISBRouting(variant={self.variant!r}, rule={self.rule!r}, shapes=[{shapes}])"

    def assign(self, shapes: torch.Tensor) -> torch.Tensor:
        """(M, 2) (h, w) cell shapes -> (M,) branch index, -1 for no branch."""
        shapes = shapes.reshape(-1, 2)
        table = self._table.to(shapes.device)
        none = torch.full((shapes.shape[0],), -1, dtype=torch.int64, device=shapes.device)
        if self.rule == "all":
            return none + 1
        if self.rule == "largest_fit":
            hits = (shapes[:, None, :] >= table[None]).all(-1)
        else:
            exact_table = table[:-1] if self.rule == "exact_then_rest" else table
            hits = (shapes[:, None, :] == exact_table[None]).all(-1)
        first = hits.to(torch.int32).argmax(1)
        assigned = torch.where(hits.any(1), first, none)
        if self.rule == "exact_then_rest":
            assigned = torch.where(assigned < 0, torch.full_like(assigned, len(self) - 1), assigned)
        return assigned

    def route(self, shapes: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """:meth:`assign`, then at most ``max_boxes`` boxes per branch and image, the
        earliest in the given order; boxes over the cap get -1."""
        branch = self.assign(shapes)
        if branch.numel() == 0:
            return branch
        num = len(self)
        valid = branch >= 0
        group = torch.where(valid, image_index * num + branch + 1, torch.zeros_like(branch))
        rank = rank_in_group(group)  # group 0: the unrouted boxes
        caps = self._caps.to(branch.device)[branch.clamp(min=0)]
        return torch.where(valid & (rank < caps), branch, torch.full_like(branch, -1))

    def groups(self, branch: torch.Tensor) -> List[torch.Tensor]:
        """Per branch, the indices of the boxes routed to it, in their order (one sort and
        one read-back of the counts, instead of a nonzero per branch)."""
        order = torch.sort(branch, stable=True).indices
        counts = torch.bincount(branch + 1, minlength=len(self) + 1).tolist()
        return list(order.split(counts))[1:]  # the first group: unrouted boxes (-1)


def _shapes(shapes) -> List[Tuple[int, int]]:
    out = [tuple(int(v) for v in s) for s in shapes]
    if any(len(s) != 2 or min(s) < 1 for s in out):
        raise ValueError(f"branch shapes must be (h, w) pairs of positive cells, got {shapes}")
    return out


def build_isb_routing(
    variant: str,
    *,
    single_branch_shape: Sequence[int] = (10, 10),
    single_branch_pool: bool = True,
    single_shapes: Sequence[Sequence[int]] = (),
    remainder_shape: Sequence[int] = (14, 14),
    multi_shape_thresholds: Sequence[Sequence[int]] = (),
    max_boxes_single_branch: int = 100,
    max_boxes_per_branch: int = 30,
) -> ISBRouting:
    """The routing of one of :data:`ISB_VARIANTS` (arguments: the MODEL.ISB keys)."""
    cap = max_boxes_per_branch
    if variant == "single_branch":
        (shape,) = _shapes([single_branch_shape])
        branches = [BranchSpec(shape, True, single_branch_pool, max_boxes_single_branch)]
        rule = "all"
    elif variant in ("single_shape", "single_shape_plus"):
        branches = [BranchSpec(s, False, False, cap) for s in _shapes(single_shapes)]
        rule = "exact"
        if variant == "single_shape_plus":
            (rest,) = _shapes([remainder_shape])
            branches.append(BranchSpec(rest, True, False, cap))
            rule = "exact_then_rest"
    elif variant == "multi_shape":
        branches = [BranchSpec(s, True, False, cap) for s in _shapes(multi_shape_thresholds)]
        rule = "largest_fit"
    else:
        raise ValueError(f"unknown ISB variant {variant!r}; expected one of {ISB_VARIANTS}")
    return ISBRouting(branches, rule, variant)
