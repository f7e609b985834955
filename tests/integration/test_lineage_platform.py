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
from tests.integration.conftest import PLATFORM_RUN_DATE, mlops

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
    # a dated run: the URI its date resolved to, and the date, which `mlops reproduce` reads back
    assert chain["logical_date"] == PLATFORM_RUN_DATE
    assert raw.parent.name == PLATFORM_RUN_DATE and "{date}" not in source["source"]
    printed = mlops(
        platform_run["env"], "lineage", registration["model_name"], "--version", str(registration["version"])
    )
    assert f"date       {PLATFORM_RUN_DATE}" in printed.stdout, printed.stdout


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


def test_a_hive_dataset_on_the_object_store_reads_digests_and_verifies_as_on_disk(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 31: an s3:// hive-partitioned extract on the real (loopback) object store reads as the same
    folder on disk, with the same digest; `mlops reproduce`'s check (lineage.verify) found such a folder
    "gone" (a HEAD on the prefix, not a listing) and refused every reproduction of it."""
    from components import lineage
    from components.errors import ComponentError
    from components.raw_data import raw_digest, read_raw

    frame = pd.DataFrame({"user_id": range(48), "amount": [float(i) for i in range(48)]})
    frame["event_timestamp"] = pd.date_range("2026-12-01", periods=48, freq="h", tz="UTC").astype("datetime64[ns, UTC]")
    frame["date"] = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    local = tmp_path / "extract"
    frame.to_parquet(local, partition_cols=["date"], index=False)
    for key, value in stack.environment().items():
        monkeypatch.setenv(key, value)
    client = stack.s3_client()
    client.create_bucket(Bucket="churn-extracts")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), "churn-extracts", f"nightly/{path.relative_to(local).as_posix()}")
    uri = "s3://churn-extracts/nightly"
    read = read_raw(uri, timestamp_column="event_timestamp", timezone=None, step="test")
    assert str(read["event_timestamp"].dtype) == "datetime64[us, UTC]" and len(read) == 48
    assert sorted(read["date"].unique()) == ["2026-12-01", "2026-12-02"]
    assert raw_digest(uri) == raw_digest(str(local))
    record = lineage.describe(uri, read, "raw")
    assert lineage.verify(record) == uri
    client.delete_object(
        Bucket="churn-extracts", Key=client.list_objects_v2(Bucket="churn-extracts")["Contents"][0]["Key"]
    )
    with pytest.raises(ComponentError, match="has changed"):
        lineage.verify(record)
    with pytest.raises(ComponentError, match="is gone from s3://churn-extracts/elsewhere"):
        lineage.verify({**record, "source": "s3://churn-extracts/elsewhere"})
