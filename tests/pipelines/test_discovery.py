"""How `mlops` finds pipelines: the installed entry points (the reference pipelines register the
same way a team's package does) or a package folder given as a path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.errors import ComponentError
from pipelines import discovery
from tests.conftest import REPO


def test_the_reference_pipelines_are_registered_entry_points() -> None:
    registered = discovery.registered()
    assert {"fraud", "forecast"} <= set(registered)
    assert registered["fraud"].value == "pipelines.fraud.pipeline:DECLARATION"
    assert discovery.declaration("fraud").package == "pipelines.fraud"


def test_a_folder_is_a_pipeline_too_with_its_parents_package_kept() -> None:
    by_path = discovery.declaration(str(REPO / "pipelines" / "forecast"))
    assert by_path is discovery.declaration("forecast")  # one module, one declaration: not imported twice


def test_an_unknown_name_says_how_to_get_it() -> None:
    with pytest.raises(ComponentError, match="unknown pipeline 'churn'") as refused:
        discovery.declaration("churn")
    assert "mlops new churn --owner YOU@EXAMPLE --from fraud --out ../churn-pipeline" in refused.value.fix


def test_a_folder_without_a_declaration_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty_pipeline").mkdir()
    with pytest.raises(ComponentError, match="is not a pipeline package"):
        discovery.declaration(str(tmp_path / "empty_pipeline"))


def test_a_team_package_named_pipelines_cannot_shadow_the_library(tmp_path: Path) -> None:
    """Positive control first: the same files under a proper name load; named `pipelines`, refused."""
    good = tmp_path / "ok" / "shadowtest_pipeline"
    shutil.copytree(REPO / "pipelines" / "fraud", good, ignore=shutil.ignore_patterns("golden", "data", "__pycache__"))
    assert discovery.declaration(str(good)).package == "shadowtest_pipeline"
    bad = tmp_path / "bad" / "pipelines"
    shutil.copytree(good, bad)
    with pytest.raises(ComponentError, match="this library's own package"):
        discovery.declaration(str(bad))
    stdlib = tmp_path / "std" / "json"
    shutil.copytree(good, stdlib)
    with pytest.raises(ComponentError, match="shadow the standard library"):
        discovery.declaration(str(stdlib))
