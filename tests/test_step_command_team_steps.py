"""`mlops step` and a pipeline's team steps (issue 31 item 3): `mlops step` builds flags from a
built-in op's signature, which cannot wire a team step (its inputs come from the declaration), so a
team step is not offered there; named, it is refused naming `mlops task <pipeline> <step>`, which
runs it. The pipeline is the team-steps test's declaration, installed under a test name."""

from __future__ import annotations

import pytest

import pipelines.local
from mlops.cli import main
from mlops.cli.run import TEAM_STEPS_RUN, steps, team_steps
from tests.pipelines.test_team_steps import CHECK, FEATURES, team_pipeline


@pytest.fixture
def churn(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = team_pipeline(FEATURES, CHECK)
    monkeypatch.setattr(pipelines.local, "available_pipelines", lambda: ["churn"])
    monkeypatch.setattr(pipelines.local, "declaration", lambda name: declared)


def test_team_steps_are_not_mlops_step_parsers_and_the_help_names_mlops_task(
    churn: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 31: `mlops step` listed a team step with flags from its KFP-style signature (Output[Dataset])
    that could not run it; now only the library's ops, and the help says where team steps run."""
    assert team_steps() == {"engineer-features": "churn", "fairness": "churn"}
    assert {"engineer-features", "fairness"}.isdisjoint(steps()) and "train" in steps()
    with pytest.raises(SystemExit):
        main(["step", "--help"])
    assert "mlops task <pipeline> <step>" in " ".join(capsys.readouterr().out.split())
    assert "mlops task" in TEAM_STEPS_RUN


def test_naming_a_team_step_is_refused_naming_mlops_task(churn: None, capsys: pytest.CaptureFixture[str]) -> None:
    """issue 31: `mlops step engineer-features ...` exits 2 naming the pipeline and `mlops task`."""
    assert main(["step", "engineer-features", "--raw-data", "x.parquet"]) == 2
    error = capsys.readouterr().err
    assert "team step of pipeline churn" in error and "mlops task churn engineer-features" in error
