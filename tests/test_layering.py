"""The package's layers import downwards only: utils and config at the bottom, then layers,
then modeling and solver, then data and evaluation, then engine. (A model importing a data
mapper, or utils importing the trainer, would tie the lower layer to the upper one.)"""
import ast
import os

from tests.conftest import REPO_ROOT

RANK = {"utils": 0, "config": 0, "layers": 1, "modeling": 2, "solver": 2, "data": 3,
        "evaluation": 3, "engine": 4}


def _imported_modules(path, package):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            yield base + (node.module.split(".") if node.module else [])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")


def test_no_module_imports_from_a_layer_above_it():
    root = os.path.join(REPO_ROOT, "panext_d2")
    upward = []
    for folder, _, files in os.walk(root):
        package = ["panext_d2", *os.path.relpath(folder, root).split(os.sep)]
        package = [p for p in package if p != "."]
        if len(package) < 2 or package[1] not in RANK:
            continue
        for name in (f for f in files if f.endswith(".py")):
            for module in _imported_modules(os.path.join(folder, name), package):
                if module[:1] == ["panext_d2"] and len(module) > 1 and module[1] in RANK:
                    if RANK[module[1]] > RANK[package[1]]:
                        upward.append(f"{os.path.join(folder, name)} imports {'.'.join(module)}")
    assert not upward, upward
