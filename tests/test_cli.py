"""The `mlops` command line as a task or a user calls it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import mlops
from tests.conftest import SUITE


def test_step_prints_one_json_line(raw_dataset: Path, tmp_path: Path) -> None:
    result = mlops(
        "step",
        "validate",
        "--dataset",
        str(raw_dataset),
        "--suite-path",
        str(SUITE),
        "--report-path",
        str(tmp_path / "report.json"),
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and json.loads(lines[0])["success"] is True


def test_step_error_names_problem_and_fix(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_text("not parquet")
    result = mlops(
        "step",
        "train",
        "--train-set",
        str(tmp_path / "x.parquet"),
        "--model-out",
        str(tmp_path / "m"),
        "--metadata-out",
        str(tmp_path / "m.json"),
        "--settings",
        '{"model_type": "lightgbm"}',
        "--features",
        "a,b",
        "--label-column",
        "y",
    )
    assert result.returncode == 2
    assert "model_type: Input should be 'xgboost' or 'pytorch_mlp' (got 'lightgbm')" in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()


def test_compile_kfp_writes_ir_that_kfp_loads(tmp_path: Path) -> None:
    from kfp import components

    result = mlops("compile", "fraud", "--target", "kfp", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)["written"]
    pipeline = components.load_component_from_file(written[0])
    assert pipeline.name == "fraud"


def test_dev_status_on_an_empty_folder_reports_every_service_stopped(tmp_path: Path) -> None:
    from mlops.cli import main

    assert main(["dev", "status", "--dir", str(tmp_path)]) == 1


def test_dev_env_prints_the_platform_profile_for_the_chosen_ports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops.cli import main

    assert main(["dev", "env", "--dir", str(tmp_path), "--port-base", "21000"]) == 0
    printed = capsys.readouterr().out
    assert "export MLOPS_PROFILE=platform" in printed
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:21004" in printed
    assert "export MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:21003" in printed
    assert "export MLOPS_FEAST_REDIS=127.0.0.1:21002" in printed
