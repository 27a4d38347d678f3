"""tools/analyze_model.py and panext_d2.utils.model_size.parameter_table."""
import pytest
from torch import nn

from panext_d2.utils.model_size import parameter_table
from tests.tools.conftest import load_script, tiny_semseg_yaml



@pytest.fixture(scope="module")
def tool():
    return load_script("tools/analyze_model.py")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_semseg_yaml(freeze_at=2))
    return str(path)


def test_parameter_table_hand_computed():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Linear(2, 3)), nn.Linear(3, 1))
    model[0][1].weight.requires_grad_(False)
    rows = {r["name"]: (r["depth"], r["parameters"], r["trainable"])
            for r in parameter_table(model, max_depth=2)}
    assert rows == {"": (0, 17, 11), "0": (1, 13, 7), "0.0": (2, 4, 4), "0.1": (2, 9, 3),
                    "1": (1, 4, 4)}
    assert set(r["name"] for r in parameter_table(model, max_depth=1)) == {"", "0", "1"}


def test_parameter_task_matches_numel_sum(tool, config, capsys):
    from panext_d2 import Trainer, get_panext_cfg

    report = tool.main(["--config-file", config, "--tasks", "parameter", "structure",
                        "--max-depth", "2"])
    model = Trainer.build_model(get_panext_cfg(config))
    rows = {r["name"]: r for r in report["parameter"]}
    assert rows[""]["parameters"] == sum(p.numel() for p in model.parameters())
    assert rows[""]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert rows[""]["trainable"] < rows[""]["parameters"]  # FREEZE_AT 2 freezes stem and res2
    assert rows["sem_seg_head"]["parameters"] == sum(
        p.numel() for p in model.sem_seg_head.parameters())
    assert max(r["depth"] for r in report["parameter"]) == 2
    printed = capsys.readouterr().out
    assert f"total {rows['']['parameters']:,}" in printed
    assert "SemanticSegmentor(" in report["structure"]


def test_flop_task_on_synthetic_images(tool, config):
    report = tool.main(["--config-file", config, "--tasks", "flop", "--height", "64",
                        "--width", "64", "--num-inputs", "2", "--max-depth", "1"])
    flops = report["flop"]
    assert flops[""] > 0
    assert set(flops) <= {"", "backbone", "sem_seg_head"}
    assert flops["backbone"] + flops["sem_seg_head"] == pytest.approx(flops[""], rel=0.05)
