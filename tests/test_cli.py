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
        '{"model_type": "catboost"}',
        "--features",
        "a,b",
        "--label-column",
        "y",
    )
    assert result.returncode == 2
    assert "model_type: Value error, train.model_type 'catboost'" in result.stderr
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


def test_data_writes_a_pipelines_synthetic_set_and_names_its_own_label(tmp_path: Path) -> None:
    """issue 31: `mlops data` called data.generate directly (a loader team without one got a traceback)
    and reported the mean of `is_fraud` or of the last column, whatever the pipeline's label was."""
    import shutil

    import pandas as pd

    from tests.conftest import REPO

    out = tmp_path / "forecast.parquet"
    written = mlops("data", "forecast", "--rows", "300", "--seed", "3", "--out", str(out))
    assert written.returncode == 0, written.stderr
    frame = pd.read_parquet(out)
    assert json.loads(written.stdout) == {
        "rows": len(frame), "label": "demand", "label_mean": round(float(frame["demand"].mean()), 5), "out": str(out)
    }  # fmt: skip
    loader = tmp_path / "loader" / "loaderteam_pipeline"
    shutil.copytree(REPO / "pipelines" / "fraud", loader, ignore=shutil.ignore_patterns("golden", "__pycache__"))
    (loader / "data.py").write_text('"""Reads the bank\'s extract; no synthetic data."""\n')
    refused = mlops("data", str(loader), "--out", str(tmp_path / "x.parquet"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "defines no generate(rows, seed)" in refused.stderr and "--data FILE" in refused.stderr


def test_score_prints_a_multiclass_answer_as_its_class_and_probabilities(capsys: pytest.CaptureFixture[str]) -> None:
    """issue 31: `mlops score` formatted every prediction as one float and crashed (TypeError) on a
    multiclass model's answer, k probabilities per row and the predicted class; the transformer's
    stand-in here answers exactly what components.serving.answers builds (the transformer's own code)."""
    import numpy as np

    from components.serving.answers import v1_answer
    from mlops.cli import main
    from tests.loopback_http import QuietHandler, serving

    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])

    class Transformer(QuietHandler):
        def do_POST(self) -> None:
            rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["instances"]
            body = json.dumps(v1_answer(scores[: len(rows)], [False] * len(rows), "4")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    with serving(Transformer) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rows = json.dumps([{"user_id": 1, "amount": 2.0}, {"user_id": 2, "amount": 3.0}])
        assert main(["score", "churn-detector", rows, "--url", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "class 1  probabilities [0.100000, 0.700000, 0.200000]  (churn-detector v4)" in out[0]
    assert "class 0  probabilities [0.500000, 0.250000, 0.250000]" in out[1]
