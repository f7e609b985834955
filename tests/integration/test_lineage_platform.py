"""Lineage on the platform profile: the session's fraud run on the real services reads back through
the tracking server, and a lakeFS object (its S3 gateway URI, commit in the path) is recorded with
its commit and read back from MLflow's dataset API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from devstack.stack import Stack
from tests.integration.conftest import mlops

pytestmark = pytest.mark.integration
COMMIT = "c0ffee" + "0" * 58


def test_mlops_lineage_reads_the_platform_run_back(platform_run: dict[str, Any]) -> None:
    registration = platform_run["registration"]
    shown = mlops(platform_run["env"], "lineage", registration["model_name"], "--version",
                  str(registration["version"]), "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    chain = json.loads(shown.stdout)
    assert chain["artifact_sha256"] == registration["artifact_sha256"] and chain["run_id"] == registration["run_id"]
    source = next(d for d in chain["datasets"] if d["context"] == "source")
    raw = Path(source["source"])
    assert source["digest"] == hashlib.sha256(raw.read_bytes()).hexdigest() and source["rows"] == len(
        pd.read_parquet(raw)
    )
    assert {d["context"] for d in chain["datasets"]} == {"source", "training", "holdout"}
    assert chain["feature_service"]["name"] == "fraud_model_v1" and chain["git_commit"]


def test_a_lakefs_object_is_recorded_with_its_commit_and_read_back(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from components import lineage

    frame = pd.DataFrame({"user_id": [1, 2], "amount": [3.0, 4.0]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    client = stack.s3_client()
    client.create_bucket(Bucket="fraud-lake")  # a lakeFS repository, as its S3 gateway shows it
    client.upload_file(str(tmp_path / "t.parquet"), "fraud-lake", f"{COMMIT}/transactions/t.parquet")
    uri = f"s3://fraud-lake/{COMMIT}/transactions/t.parquet"
    for key, value in stack.environment().items():
        monkeypatch.setenv(key, value)
    record = lineage.describe(uri, frame, "raw")
    assert record["lakefs"] == {"repository": "fraud-lake", "commit": COMMIT, "path": "transactions/t.parquet"}
    assert record["digest"] == hashlib.sha256((tmp_path / "t.parquet").read_bytes()).hexdigest()
    tracking = MlflowClient(stack.tracking_uri)
    experiment = tracking.create_experiment("lineage-lakefs")
    run = tracking.create_run(experiment)
    lineage.log_datasets(tracking, run.info.run_id, [record])
    (read,) = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert json.loads(read.dataset.source)["uri"] == uri and read.dataset.source_type == "s3"
    assert json.loads(read.dataset.profile)["digest"] == record["digest"]
    assert [t.value for t in read.tags if t.key == "mlflow.data.context"] == ["source"]


def test_mlops_reproduce_retrains_the_platform_version_byte_for_byte(platform_run: dict[str, Any]) -> None:
    """On the platform profile: the record read through the tracking server, the data checked by its
    digest, the retraining on a scratch store (the platform's stores untouched), the same bytes."""
    registration = platform_run["registration"]
    done = mlops(
        platform_run["env"], "reproduce", registration["model_name"], "--version", str(registration["version"])
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REPRODUCED" in done.stdout and registration["artifact_sha256"] in done.stdout
