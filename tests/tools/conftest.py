"""Shared by the tool tests: loading a script of tools/ or demo/ as a module, and a tiny
SemanticSegmentor config that builds and runs in a second."""
import importlib.util
import os

from tests.conftest import REPO_ROOT


def load_script(relative_path: str, name: str = None):
    """The script at ``REPO_ROOT/relative_path`` (e.g. "tools/benchmark.py") as a module."""
    path = os.path.join(REPO_ROOT, relative_path)
    name = name or "script_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_semseg_yaml(fpn: int = 16, freeze_at: int = 0, max_size_test: int = 64) -> str:
    """A ResNet-18 FPN SemanticSegmentor of 3 classes at 64 px, as a YAML config."""
    return f"""
MODEL:
  META_ARCHITECTURE: SemanticSegmentor
  DEVICE: cpu
  WEIGHTS: ""
  BACKBONE: {{NAME: build_resnet_fpn_backbone, FREEZE_AT: {freeze_at}}}
  RESNETS: {{DEPTH: 18, RES2_OUT_CHANNELS: 64, NORM: BN,
             OUT_FEATURES: [res2, res3, res4, res5]}}
  FPN: {{IN_FEATURES: [res2, res3, res4, res5], OUT_CHANNELS: {fpn}}}
  SEM_SEG_HEAD: {{NAME: SemSegFPNHead, IN_FEATURES: [p2, p3, p4, p5], CONVS_DIM: 32,
                  NUM_CLASSES: 3, NORM: GN, IGNORE_VALUE: 255}}
INPUT: {{MIN_SIZE_TRAIN: [64], MAX_SIZE_TRAIN: 64, MIN_SIZE_TEST: 64, MAX_SIZE_TEST: {max_size_test}}}
DATALOADER: {{NUM_WORKERS: 0}}
SOLVER: {{IMS_PER_BATCH: 1, BASE_LR: 0.001}}
"""
