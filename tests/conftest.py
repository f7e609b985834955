"""Shared fixtures: a small synthetic dataset and the outputs of the steps that follow it.

Steps are run for real (GX, Feast, XGBoost, MLflow on sqlite) in a temporary MLOPS_HOME, once
per session where later tests only read their outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.config import EvaluateSettings, MaterializeSettings, RegisterSettings, TrainSettings
from tests.parallel_groups import pytest_collection_modifyitems as pytest_collection_modifyitems  # two workers

REPO = Path(__file__).resolve().parents[1]
FRAUD = REPO / "pipelines" / "fraud"
SUITE = FRAUD / "expectations.json"
FEATURE_REPO = FRAUD / "feature_repo"
MATERIALIZE_SETTINGS = MaterializeSettings(
    project="fraud",
    feature_service="fraud_model_v1",
    entity_column="user_id",
    timestamp_column="event_timestamp",
    label_column="is_fraud",
    request_features=["amount", "merchant_category"],
)
FEATURES = ["amount", "merchant_category", "txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session-wide MLOPS_HOME, and a folder of the session's own for the warm workers its runs start
    (pipelines/warm_worker.py), stopped at the end: another session's workers are never touched."""
    import shutil
    import tempfile

    from pipelines.warm_worker import DIRECTORY_VARIABLE, stop_all

    home = tmp_path_factory.mktemp("mlops-home")
    os.environ["MLOPS_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    workers = tempfile.mkdtemp(dir="/tmp", prefix="mlw-")  # short: a Unix socket's path holds 108 bytes
    os.environ[DIRECTORY_VARIABLE] = workers
    yield home
    stop_all()
    shutil.rmtree(workers, ignore_errors=True)


COMPONENT_IMAGE = "localhost/private-mlops/component:test"
# What register hands promote, for tests that render an InferenceService without training one.
REGISTRATION = {
    "model_name": "fraud-detector",
    "version": 3,
    "run_id": "0123456789abcdef0123456789abcdef",
    "artifact_sha256": "a" * 64,
    "model_card_uri": "s3://mlflow/card.md",
    "gate": {"metric": "roc_auc", "value": 0.91},
    "holdout_metrics": {"roc_auc": 0.91},
}


@pytest.fixture(scope="session")
def component_image() -> str:
    """The CPU component image, built once per session from this checkout (images/build.sh)."""
    import shutil
    import subprocess

    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make images-setup` (make test does) before this test")
    built = subprocess.run(
        ["bash", "images/build.sh", "component", COMPONENT_IMAGE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return COMPONENT_IMAGE


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """Upstream schemas, from MLOPS_SCHEMAS_DIR (.ci/run sets it) or the shared folder beside the repo."""
    path = Path(os.environ.get("MLOPS_SCHEMAS_DIR") or REPO.parent / "shared" / "schemas")
    if not path.is_dir():
        pytest.fail(f"upstream schemas not found at {path}: set MLOPS_SCHEMAS_DIR to the shared schemas folder")
    return path


@pytest.fixture(scope="session")
def raw_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.fraud.data import generate

    path = tmp_path_factory.mktemp("raw") / "transactions.parquet"
    generate(8000, 11).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory, raw_dataset: Path) -> dict[str, Any]:
    from components.steps.materialize import materialize

    root = tmp_path_factory.mktemp("materialized")
    summary = materialize(
        str(raw_dataset),
        str(FEATURE_REPO),
        str(root / "train.parquet"),
        str(root / "holdout.parquet"),
        store_dir=str(root / "store"),
        settings=MATERIALIZE_SETTINGS,
    )
    return {
        "root": root,
        "summary": summary,
        "store": root / "store",
        "train": root / "train.parquet",
        "holdout": root / "holdout.parquet",
    }


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, materialized: dict[str, Any]) -> dict[str, Path]:
    from components.steps.train import train

    root = tmp_path_factory.mktemp("trained")
    train(
        str(materialized["train"]),
        str(root / "model"),
        str(root / "metadata.json"),
        features=FEATURES,
        label_column="is_fraud",
        settings=TrainSettings(model_type="xgboost", params={"num_boost_round": 60}),
    )
    return {"model": root / "model", "metadata": root / "metadata.json"}


@pytest.fixture(scope="session")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, trained: dict[str, Path], materialized: dict[str, Any]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluated")
    evaluate_into(root, trained["model"], trained["metadata"], materialized["holdout"], EvaluateSettings(threshold=0.7))
    return {"metrics": root / "metrics.json", "roc": root / "roc.png", "pr": root / "pr.png"}


def evaluate_into(
    out: Path, model: Path, metadata: Path, holdout: Path, settings: EvaluateSettings, **extra: Any
) -> dict[str, Any]:
    """The evaluate step on `model`, its outputs in `out` (metrics.json, roc.png, pr.png): the tests'
    one call of it (issue 30: its eight arguments were written out five times)."""
    from components.steps.evaluate import evaluate

    return evaluate(str(model), str(metadata), str(holdout), str(out / "metrics.json"), str(out / "roc.png"),
                    str(out / "pr.png"), settings=settings, **extra)  # fmt: skip


def register_into(
    out: Path, home: Path, model: Path, metadata: Path, metrics: Path, *, model_name: str, **extra: Any
) -> dict[str, Any]:
    """The register step, its outputs in `out` (registration.json, card.md), into a sqlite MLflow
    registry under `home` as pipeline fraud's (issue 30: written out five times)."""
    from components.steps.register import register

    summary: dict[str, Any] = register(
        str(model), str(metadata), str(metrics), str(out / "registration.json"), str(out / "card.md"),
        settings=RegisterSettings(model_name=model_name, experiment="fraud"),
        tracking_uri=f"sqlite:///{home}/mlflow.db", artifact_root=(home / "artifacts").as_uri(), pipeline="fraud",
        **extra,
    )  # fmt: skip
    return summary


def train_evaluate_register(
    materialized: dict[str, Any],
    out: Path,
    registry_home: Path,
    *,
    model_name: str,
    model_type: str = "xgboost",
    params: dict[str, Any] | None = None,
    threshold: float = 0.7,
    distributed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One more registered version, made by the real steps: for tests that need several."""
    from components.steps.train import train

    model, metadata, metrics = out / "model", out / "metadata.json", out / "metrics.json"
    train(str(materialized["train"]), str(model), str(metadata), features=FEATURES, label_column="is_fraud",
          settings=TrainSettings(model_type=model_type, params=params or {}, distributed=distributed))  # fmt: skip
    evaluate_into(out, model, metadata, materialized["holdout"], EvaluateSettings(threshold=threshold))
    register_into(out, registry_home, model, metadata, metrics, model_name=model_name)
    registration: dict[str, Any] = json.loads((out / "registration.json").read_text())
    return {"model": model, "metadata": metadata, "metrics": metrics, "registration": registration}


def write_kubeconfig(path: Path, port: int) -> Path:
    """A kubeconfig whose one context points at a loopback API server on `port` (a token user)."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "onprem",
                "clusters": [{"name": "onprem", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "alice", "user": {"token": "t"}}],
                "contexts": [{"name": "onprem", "context": {"cluster": "onprem", "user": "alice"}}],
            }
        )
    )
    return path
