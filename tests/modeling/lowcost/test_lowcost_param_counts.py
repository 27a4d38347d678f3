"""Kolhatkar (2020) Table 4.2 "Number of Parameters" (19 Cityscapes classes, 2048x1024 input; counts
do not depend on the input size), counted as TensorFlow does: trainable parameters plus the
BatchNorm moving mean and variance (docs/DESIGN.md §2, §3)."""

from detectron2.modeling import build_model

from panext_d2.utils.model_size import count_parameters

from tests.modeling.lowcost.variants import make_lowcost_cfg

TABLE_4_2 = {
    "SqzNet-Base": 732243,
    "SqzNet-FCN8": 740470,
    "SqzNet-Stride8": 732243,
    "MN-Base": 839283,
    "MN-FCN16": 849942,
    "MN-FCN8": 858169,
    "MN-Stride16": 839283,
    "MN-Stride8": 839283,
}


def test_table_4_2_parameter_counts(capsys):
    rows = []
    for variant, thesis in TABLE_4_2.items():
        ours = count_parameters(build_model(make_lowcost_cfg(variant)))["trainable_plus_bn_stats"]
        rows.append((variant, ours, thesis))
    with capsys.disabled():
        print("\n| architecture | ours (trainable + BN stats) | Table 4.2 | diff |")
        print("| --- | --- | --- | --- |")
        for variant, ours, thesis in rows:
            print(f"| {variant} | {ours:,} | {thesis:,} | {ours - thesis:+d} |")
    # Every row is reproduced exactly (a 10 % tolerance would do).
    assert [ours for _, ours, _ in rows] == [thesis for _, _, thesis in rows]


def test_skip_step_increments():
    """Each FCN step = 4x4 19->19 transposed conv (no bias) + 1x1 C->19 scoring conv (bias)."""

    def count(variant):
        return count_parameters(build_model(make_lowcost_cfg(variant)))["trainable_plus_bn_stats"]

    step = lambda c: 4 * 4 * 19 * 19 + c * 19 + 19  # noqa: E731
    assert count("MN-FCN16") - count("MN-Base") == step(256) == 10659
    assert count("MN-FCN8") - count("MN-FCN16") == step(128) == 8227
    assert count("SqzNet-FCN8") - count("SqzNet-Base") == step(128)
    assert count("SqzNet-FCN4") - count("SqzNet-FCN8") == step(64)
