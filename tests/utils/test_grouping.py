import torch

from panext_d2.utils.grouping import rank_in_group


def test_rank_in_group_against_a_loop():
    g = torch.Generator().manual_seed(0)
    group = torch.randint(0, 5, (200,), generator=g)
    expected, seen = [], {}
    for value in group.tolist():
        expected.append(seen.get(value, 0))
        seen[value] = seen.get(value, 0) + 1
    assert rank_in_group(group).tolist() == expected
    assert rank_in_group(group, 8).tolist() == expected
    assert rank_in_group(torch.tensor([2, 0, 2, 2, 0])).tolist() == [0, 0, 1, 2, 1]
