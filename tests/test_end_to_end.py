"""`mlops run fraud` end to end, as a user runs it: real GX, Feast, XGBoost/PyTorch, MLflow (sqlite),
through kfp.local's SubprocessRunner. Each test has its own MLOPS_HOME, i.e. a fresh platform, but for
the two PyTorch tests, which read one run (the module fixture pytorch_run)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests import cli_runner
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
ROWS = "8000"
PYTORCH_ROWS = "4000"
"""The PyTorch run's rows: its claims are the TorchScript served and reproduced, not the score, and its
gate is 0.6 (0.88 measured at 4000 rows); half the rows halve its training, twice (run and reproduce)."""


def mlops(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pipeline(home, "fraud", *args)


def user_env(home: Path) -> dict[str, str]:
    """A laptop user's environment with `home` as MLOPS_HOME: no tracking server inherited from here."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_pipeline(home: Path, pipeline: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_runner.mlops("run", pipeline, *args, env=user_env(home), timeout=900)


def registered_versions(home: Path) -> list[int]:
    database = home / "mlflow" / "mlflow.db"
    if not database.exists():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{database}", registry_uri=f"sqlite:///{database}")
    return sorted(int(v.version) for v in client.search_model_versions("name='fraud-detector'"))


def latest_run(home: Path) -> Path:
    return max((home / "kfp-runs").iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module")
def fraud_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One fresh `mlops run fraud` (its MLOPS_HOME and its output), which the rerun test continues
    and the failing-gate test reruns with a stricter gate: its validate, materialize and train come
    from this run's cache, so the gate's scenario costs evaluate and notify, not a pipeline."""
    home = tmp_path_factory.mktemp("fraud-home")
    return home, mlops(home, "--rows", ROWS)


def test_run_registers_then_rerun_reuses_the_version(
    fraud_home: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp_path, first = fraud_home
    assert first.returncode == 0, first.stdout + first.stderr
    assert "fraud-detector version 1 (new)" in first.stdout
    run = latest_run(tmp_path)
    service = yaml.safe_load((run / "promote" / "inference_service").read_text())
    assert service["kind"] == "InferenceService" and service["spec"]["predictor"]["canaryTrafficPercent"] == 10
    registration = json.loads((run / "register" / "registration").read_text())
    model_file = run / "promote" / "model_repository" / "fraud-detector" / "1" / "xgboost.json"
    assert model_file.read_bytes() == (run / "train" / "model").read_bytes()
    assert registration["artifact_sha256"] == json.loads((run / "train" / "metadata").read_text())["model_sha256"]
    for line in ("validation   passed", "materialize", "evaluate     roc_auc", "InferenceService", "Triton model"):
        assert line in first.stdout

    second = mlops(tmp_path, "--rows", ROWS)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "fraud-detector version 1 (reused (same artifact sha256))" in second.stdout
    # the same data, config and code: every step before register is answered from the cache
    cached = {line.split()[1] for line in second.stdout.splitlines() if "cached: inputs unchanged" in line}
    assert cached == {"validate", "materialize", "train", "evaluate"}, second.stdout
    assert "  ... validate" not in second.stdout and "  ... register" in second.stdout
    # a config change re-runs from the first step it affects (evaluate's decision threshold)
    changed = mlops(tmp_path, "--rows", ROWS, "--set", "evaluate.decision_threshold=0.4")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    cached = {line.split()[1] for line in changed.stdout.splitlines() if "cached: inputs unchanged" in line}
    assert cached == {"validate", "materialize", "train"} and "  ... evaluate" in changed.stdout
    assert registered_versions(tmp_path) == [1]
    # every piece of state stayed under MLOPS_HOME
    assert {p.name for p in tmp_path.iterdir()} <= {
        "data",
        "feast",
        "mlflow",
        "kfp-runs",
        "kfp-cache",
        "kfp-workspace",
        "serving",
        "logs",
        "offline",
    }
    # the offline store keeps each run's validated data, keyed by project and run (the cached
    # runs wrote none: their data was already there)
    offline_runs = sorted((tmp_path / "offline" / "fraud").iterdir())
    assert len(offline_runs) == 1 and all((run / "fraud_events.parquet").is_file() for run in offline_runs)

    # As the nightly decides (--if-needed), once v1 is champion: the same data holds, drifted data trains.
    from mlflow import MlflowClient

    database = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    MlflowClient(database, registry_uri=database).set_registered_model_alias("fraud-detector", "champion", "1")
    held = mlops(tmp_path, "--rows", ROWS, "--if-needed")
    assert held.returncode == 0, held.stdout + held.stderr
    assert "drift        no retrain needed: 0 of 6 features drifted" in held.stdout
    run = latest_run(tmp_path)
    assert (run / "hold").is_dir() and not (run / "train").exists() and not (run / "register").exists()
    assert json.loads((run / "drift" / "drift_table").read_text())["reference"]["version"] == 1

    raw = pd.read_parquet(next((tmp_path / "data" / "fraud").glob("raw-*.parquet")))
    raw["amount"] = (raw["amount"] * 1.6).round(2)
    raw.loc[raw.index % 5 < 2, "merchant_category"] = 7
    raw.to_parquet(tmp_path / "drifted.parquet", index=False)
    retrained = mlops(tmp_path, "--data", str(tmp_path / "drifted.parquet"), "--if-needed")
    assert retrained.returncode == 0, retrained.stdout + retrained.stderr
    assert "cached" not in retrained.stdout  # new bytes: every step runs
    assert "drift        retrain: drift: 2 of 6 features drifted" in retrained.stdout
    run = latest_run(tmp_path)
    assert (run / "train").is_dir() and not (run / "hold").exists()
    assert registered_versions(tmp_path) == [1, 2]


def test_failing_gate_notifies_and_registers_nothing(fraud_home: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    home, first = fraud_home
    assert first.returncode == 0, first.stdout + first.stderr
    before = registered_versions(home)
    result = mlops(home, "--rows", ROWS, "--min-auc", "0.999")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate roc_auc >= 0.999: FAILED" in result.stdout
    run = latest_run(home)
    notice = json.loads((run / "notify" / "notice").read_text())
    assert notice["threshold"] == 0.999 and notice["owner"] and notice["value"] < 0.999
    assert not (run / "register").exists() and not (run / "promote").exists()
    assert before and registered_versions(home) == before  # the failed gate registered nothing


def test_bad_data_stops_at_validate_and_writes_nothing_downstream(tmp_path: Path) -> None:
    from pipelines.fraud.data import generate

    frame = generate(int(ROWS), 7)
    frame["is_fraud"] = frame["is_fraud"].astype(float)
    frame.loc[frame.index[:5], "is_fraud"] = None
    frame.to_parquet(tmp_path / "bad.parquet")
    home = tmp_path / "home"
    result = mlops(home, "--data", str(tmp_path / "bad.parquet"))
    assert result.returncode == 2, "mlops run exits with the failing step's class code, as mlops step does"
    assert "expect_column_values_to_not_be_null on column 'is_fraud' — 5 rows" in result.stdout
    assert "fix:" in result.stdout
    run = latest_run(home)
    assert [p.name for p in run.iterdir() if p.is_dir()] == ["validate"]
    assert not (home / "feast").exists() and not (home / "mlflow").exists() and not (home / "offline").exists()


def test_unknown_model_type_in_config_is_refused_before_any_step(tmp_path: Path) -> None:
    result = mlops(tmp_path, "--set", "train.model_type=catboost")
    assert result.returncode == 2
    assert (
        "train.model_type" in result.stderr
        and "catboost" in result.stderr
        and "is no installed model kind" in result.stderr
    )
    assert not (tmp_path / "kfp-runs").exists()


@pytest.fixture(scope="module")
def pytorch_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One `mlops run fraud --model-type pytorch_mlp` (its MLOPS_HOME and its run folder), which the
    TorchScript serving test and the byte-for-byte reproduce test both read: one pipeline run
    fewer in the suite (each run is ~45 s)."""
    home = tmp_path_factory.mktemp("pytorch-home")
    result = mlops(home, "--rows", PYTORCH_ROWS, "--model-type", "pytorch_mlp", "--min-auc", "0.6")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fraud-detector version 1 (new)" in result.stdout
    return home, latest_run(home)


def test_pytorch_mlp_pipeline_serves_torchscript(pytorch_run: tuple[Path, Path]) -> None:
    tmp_path, run = pytorch_run
    repository = run / "promote" / "model_repository" / "fraud-detector"
    assert "pytorch_libtorch" in (repository / "config.pbtxt").read_text()
    assert (repository / "1" / "model.pt").read_bytes() == (run / "train" / "model").read_bytes()
    assert pd.read_parquet(run / "materialize" / "holdout_set").shape[0] == int(PYTORCH_ROWS) // 5

    # The request path on the laptop's embedded stores (sqlite online store, Feast's SDK read),
    # behind libtorch's tensors: serve with features, then score one request.
    from components.steps.model_formats import load_predictor
    from devstack.process import free_port_base

    env = user_env(tmp_path)
    port_base = str(free_port_base(5))
    cli = functools.partial(cli_runner.mlops, env=env, timeout=300)

    served = cli("serve", "fraud-detector", "--with-features", "--explain", "--detach", "--port-base", port_base)
    try:
        assert served.returncode == 0, served.stdout + served.stderr
        assert "scoring transformer (fraud: feature service fraud_model_v1" in served.stdout
        user = int(pd.read_parquet(run / "materialize" / "holdout_set")["user_id"].iloc[0])
        request = json.dumps({"user_id": user, "amount": 120.0, "merchant_category": 3})
        scored = cli("score", "fraud-detector", request, "--explain", "--port-base", port_base)
        assert scored.returncode == 0, scored.stdout + scored.stderr
        lines = scored.stdout.splitlines()
        used = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
        metadata = json.loads((run / "train" / "metadata").read_text())
        assert list(used) == metadata["features"] and "unknown entity" not in lines[0]
        vector = np.asarray([[used[name] for name in metadata["features"]]], dtype=np.float32)
        expected = float(load_predictor(run / "train" / "model", metadata)(vector)[0])
        assert f"score {expected:.6f}" in lines[0]
    finally:
        cli("serve", "fraud-detector", "--stop")


def test_forecast_regression_pipeline_passes_its_mape_gate(tmp_path: Path) -> None:
    # 50 stores of 180 days (the generator keeps whole stores): MAPE 0.208 and r2 0.80 measured, so the
    # gate's pass is not marginal, at half the 100 stores' training time
    result = run_pipeline(tmp_path, "forecast", "--rows", "9000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate mape <= 0.25: passed" in result.stdout
    assert "forecast-demand version 1 (new)" in result.stdout
    run = latest_run(tmp_path)
    metrics = json.loads((run / "evaluate" / "metrics").read_text())
    assert metrics["objective"] == "regression" and 0 < metrics["mape"] <= 0.25 and metrics["r2"] > 0.5
    service = yaml.safe_load((run / "promote" / "inference_service").read_text())
    assert service["metadata"]["annotations"]["mlops.private-platform.io/holdout-metric"] == "mape"
    config = (run / "promote" / "model_repository" / "forecast-demand" / "config.pbtxt").read_text()
    assert "pytorch_libtorch" in config and "dims: [ 1 ]" in config


def test_a_freshly_scaffolded_project_runs_by_path_uninstalled(tmp_path: Path) -> None:
    """`mlops new churn --out DIR` writes a project of its own; its package folder runs as it is
    (`mlops run DIR/churn_pipeline`), with nothing installed, and records the same lineage."""
    project = tmp_path / "churn-pipeline"
    (tmp_path / "index").mkdir()
    index = (tmp_path / "index").as_uri()  # the project binds to an index; this run installs nothing from it
    created = cli_runner.mlops("new", "churn", "--from", "fraud", "--out", str(project), "--index-url", index,
                               "--owner", "churn-oncall@bank.internal", timeout=300)  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    package = project / "churn_pipeline"
    # issue 31: the new pipeline is churn's, placeholders where only churn can write, and still runs (below)
    checklist = [line.split("[ ] ", 1)[1] for line in created.stdout.splitlines() if "[ ] " in line]
    assert any(item.startswith("churn_pipeline/config.yaml:") and "model scores" in item for item in checklist)
    linted = cli_runner.mlops("lint", "--pipeline", str(package), timeout=300)
    assert linted.returncode == 2, linted.stdout + linted.stderr
    assert all(item.split(": ", 1)[0] in linted.stderr for item in checklist)  # the checklist is what lint refuses
    assert (package / "feature_repo" / "churn_features.py").exists()
    assert (package / "golden" / "workflow-template.yaml").exists()
    assert not (REPO / "pipelines" / "churn").exists()  # nothing written into the library
    result = run_pipeline(tmp_path / "home", str(package), "--rows", ROWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "churn-model version 1 (new)" in result.stdout
    # the fork records the same lineage as the pipeline it came from
    shown = cli_runner.mlops("lineage", "churn-model", "--json", env=user_env(tmp_path / "home"), timeout=300)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    chain = json.loads(shown.stdout)
    assert {d["context"] for d in chain["datasets"]} == {"source", "training", "holdout"}
    assert len(chain["feature_service"]["sha256"]) == 64 and len(chain["config"]["sha256"]) == 64


def test_lineage_of_a_dvc_tracked_dataset_reads_back_and_reproduces_and_tampering_is_refused(tmp_path: Path) -> None:
    import hashlib

    from pipelines.fraud.data import generate

    data = tmp_path / "transactions.parquet"
    generate(int(ROWS), 7).to_parquet(data, index=False)
    md5 = hashlib.md5(data.read_bytes(), usedforsecurity=False).hexdigest()
    pointer = tmp_path / "transactions.parquet.dvc"  # what `dvc add` writes
    pointer.write_text(
        f"outs:\n- md5: {md5}\n  size: {data.stat().st_size}\n  hash: md5\n  path: transactions.parquet\n"
    )
    run = mlops(tmp_path / "home", "--data", str(pointer))
    assert run.returncode == 0, run.stdout + run.stderr

    cli = functools.partial(cli_runner.mlops, env=user_env(tmp_path / "home"), timeout=900)

    shown = cli("lineage", "fraud-detector", "--alias", "challenger", "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    chain = json.loads(shown.stdout)
    datasets = {d["context"]: d for d in chain["datasets"]}
    assert set(datasets) == {"source", "training", "holdout"}
    assert datasets["source"]["source"] == str(pointer) and datasets["source"]["digest"] == md5
    assert datasets["source"]["digest_kind"] == "dvc-md5" and datasets["source"]["dvc"]["path"] == data.name
    assert datasets["source"]["rows"] == int(ROWS)
    assert len(chain["feature_service"]["sha256"]) == 64 and chain["feature_service"]["name"] == "fraud_model_v1"
    assert chain["point_in_time"]["entity_column"] == "user_id"
    assert len(chain["suite"]["sha256"]) == 64 and len(chain["config"]["sha256"]) == 64
    assert chain["git_commit"] and {"mlflow", "feast", "xgboost-cpu"} <= set(chain["packages"])
    assert cli("lineage", "fraud-detector").stdout.startswith("fraud-detector v1 (alias challenger)")

    reproduced = cli("reproduce", "fraud-detector", "--version", "1")
    assert reproduced.returncode == 0 and "REPRODUCED" in reproduced.stdout, reproduced.stdout + reproduced.stderr
    versions = registered_versions(tmp_path / "home")
    assert versions == [1]  # reproduce registers nothing

    data.write_bytes(data.read_bytes()[:100] + bytes([data.read_bytes()[100] ^ 1]) + data.read_bytes()[101:])
    tampered = cli("reproduce", "fraud-detector", "--version", "1")
    assert tampered.returncode == 2 and "has changed: dvc-md5" in tampered.stderr, tampered.stdout + tampered.stderr


def test_a_pytorch_mlp_reproduces_byte_for_byte(pytorch_run: tuple[Path, Path]) -> None:
    tmp_path, _ = pytorch_run
    reproduced = cli_runner.mlops("reproduce", "fraud-detector", "--version", "1", env=user_env(tmp_path), timeout=900)
    assert reproduced.returncode == 0 and "REPRODUCED" in reproduced.stdout, reproduced.stdout + reproduced.stderr
