"""issue 31: `data.py` needs `generate(rows, seed)` only for a run without --data; a team whose
data.py is a loader (or that has none) is refused naming --data, not with an import traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import pytest

from components.errors import ComponentError
from pipelines.declaration import PipelineDeclaration
from pipelines.local import declaration, generator


class _Declared:
    def __init__(self, package: str) -> None:
        self.package, self.name = package, package


@pytest.mark.parametrize("data_py", [None, "def load(uri):\n    return uri\n"], ids=["no data.py", "a loader"])
def test_a_pipeline_without_a_generator_is_refused_naming_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_py: str | None
) -> None:
    """issue 31: `mlops run` without --data on a loader team failed with AttributeError."""
    package = tmp_path / f"loader_team_{'none' if data_py is None else 'load'}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    if data_py is not None:
        (package / "data.py").write_text(data_py)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ComponentError) as refused:
        generator(cast(PipelineDeclaration, _Declared(package.name)))
    assert f"{package.name}.data defines no generate(rows, seed)" in refused.value.problem
    assert f"mlops run {package.name} --data FILE" in refused.value.fix and refused.value.exit_code == 2
    for name in (package.name, f"{package.name}.data"):
        sys.modules.pop(name, None)


def test_a_reference_pipeline_keeps_its_generator() -> None:
    """issue 31: the positive control: fraud's generator is found and makes rows."""
    generate: Any = generator(declaration("fraud"))
    assert len(generate(100, 1)) == 100
