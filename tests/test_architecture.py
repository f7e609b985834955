"""The layers: mlops -> pipelines -> components, and nothing points back up (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = {
    "components": {"pipelines", "mlops", "devstack", "kfp", "hera"},
    "pipelines": {"mlops", "devstack"},
    "devstack": {"pipelines"},
}


def imports(source: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_it(layer: str) -> None:
    offenders = {
        str(source.relative_to(REPO)): sorted(imports(source) & FORBIDDEN[layer])
        for source in (REPO / layer).rglob("*.py")
        if "feature_repo" not in source.parts and imports(source) & FORBIDDEN[layer]
    }
    assert offenders == {}


def test_the_checker_sees_an_import_positive_control(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from pipelines.kfp import compile_ir\n")
    assert "pipelines" in imports(source)
