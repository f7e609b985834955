"""The fraud pipeline on the real platform services, chosen by environment alone.

After one `mlops run fraud` with the platform profile: the run's metadata is in PostgreSQL
(MLflow's tables), the model bytes are in the S3 bucket with the registered sha256, the
serving repository is under s3://models, the Feast registry is in PostgreSQL and the online
features are in Redis.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import psycopg
import pytest

from devstack.stack import DB_USER, Stack

pytestmark = pytest.mark.integration


def query(stack: Stack, database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(
        host="127.0.0.1", port=stack.ports.postgres, dbname=database, user=DB_USER, password=stack.db_password
    ) as connection:
        return connection.execute(sql, params).fetchall()


def test_run_metadata_lives_in_postgresql(stack: Stack, platform_run: dict[str, Any]) -> None:
    registration = platform_run["registration"]
    versions = query(
        stack,
        "mlflow",
        "select v.version, v.run_id, t.value from model_versions v join model_version_tags t"
        " on t.name = v.name and t.version = v.version where v.name = %s and t.key = 'artifact_sha256'",
        registration["model_name"],
    )
    assert versions == [(registration["version"], registration["run_id"], registration["artifact_sha256"])]
    metrics = dict(query(stack, "mlflow", "select key, value from metrics where run_uuid = %s", registration["run_id"]))
    assert metrics["holdout_roc_auc"] == pytest.approx(registration["gate"]["value"])
    assert query(stack, "mlflow", "select status from runs where run_uuid = %s", registration["run_id"]) == [
        ("FINISHED",)
    ]


def test_model_bytes_are_in_the_s3_bucket(stack: Stack, platform_run: dict[str, Any]) -> None:
    registration = platform_run["registration"]
    source = registration["source"]
    assert source.startswith("s3://mlflow-artifacts/")
    key = source.removeprefix("s3://mlflow-artifacts/") + "/" + registration["model_file"]
    body = stack.s3_client().get_object(Bucket="mlflow-artifacts", Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == registration["artifact_sha256"]
    serving = stack.s3_client().list_objects_v2(Bucket="models", Prefix=f"{registration['model_name']}/")
    keys = [item["Key"] for item in serving.get("Contents", [])]
    assert any(key.endswith("/config.pbtxt") for key in keys), keys


def test_feast_registry_is_in_postgresql_and_features_in_redis(
    stack: Stack, platform_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    views = query(stack, "feast", "select project_id, feature_view_name from feature_views")
    assert ("fraud", "user_transaction_stats") in views

    from components.steps.materialize import online_features

    for key, value in platform_run["env"].items():
        monkeypatch.setenv(key, value)
    train = pd.read_parquet(platform_run["run_dir"] / "materialize" / "train_set")
    users = [int(user) for user in train["user_id"].drop_duplicates().head(5)]
    found = online_features("fraud", "fraud_model_v1", [{"user_id": u} for u in users])
    assert found["user_id"] == users
    assert all(value is not None for value in found["txn_count_24h"])


def test_scoring_path_reads_what_the_feast_sdk_reads(
    stack: Stack, platform_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import open_store

    for key, value in platform_run["env"].items():
        monkeypatch.setenv(key, value)
    store = open_store("fraud")
    train = pd.read_parquet(platform_run["run_dir"] / "materialize" / "train_set")
    rows = [{"user_id": int(user)} for user in train["user_id"].drop_duplicates().head(300)]
    rows.append({"user_id": 10**12})  # unknown entity: None, as the SDK answers
    expected = store.get_online_features(features=store.get_feature_service("fraud_model_v1"), entity_rows=rows)
    found = OnlineFeatureReader(store, "fraud_model_v1").get(rows)
    assert found == expected.to_dict()
    assert found["amount_avg_7d"][-1] is None


def test_serve_and_promote_from_the_platform_registry(
    stack: Stack, platform_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The model bytes come out of S3 through the MLflow server into a real Triton; the serving
    history lands in PostgreSQL beside the versions; the repository is published to s3://models."""
    import numpy as np
    import tritonclient.http as httpclient

    from devstack.process import free_port_base
    from tests.integration.conftest import mlops

    registration = platform_run["registration"]
    name, version = registration["model_name"], registration["version"]
    env = {**platform_run["env"], "MLOPS_USER": "oncall@bank.internal"}
    port = free_port_base(3)
    folder = tmp_path_factory.mktemp("platform-serve")
    served = mlops(
        env, "serve", name, "--version", str(version), "--detach", "--port-base", str(port), "--dir", str(folder)
    )
    try:
        assert served.returncode == 0, served.stdout + served.stderr
        rows = np.zeros((2, len(registration["features"])), dtype=np.float32)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        from components.serving.triton_config import tensor_contract

        tensors = tensor_contract(registration["model_format"])  # the cluster's FIL tensors, locally too
        tensor = httpclient.InferInput(tensors.input, list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        output = client.infer(name, [tensor]).as_numpy(tensors.output)
        assert output.shape == (2, 2) and np.allclose(output.sum(axis=1), 1.0, atol=1e-6)
        assert 0.0 <= float(tensors.scores(output)[0]) <= 1.0
    finally:
        mlops(env, "serve", name, "--stop", "--dir", str(folder))

    gitops = tmp_path_factory.mktemp("platform-gitops")
    promoted = mlops(
        env, "promote", name, "--promote", "--version", str(version), "--reason", "first rollout", "--out", str(gitops)
    )
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    history = query(
        stack,
        "mlflow",
        "select key, value from registered_model_tags where name = %s and key like 'mlops.history.%%'",
        name,
    )
    assert len(history) == 1 and '"who": "oncall@bank.internal"' in history[0][1]
    load = query(
        stack,
        "mlflow",
        "select value from model_version_tags where name = %s and version = %s and key = %s",
        name,
        version,
        "mlops.serving.load_seconds",
    )
    assert load and float(load[0][0]) > 0
    shown = mlops(env, "history", name)
    assert (
        shown.returncode == 0
        and "first rollout" in shown.stdout
        and shown.stdout.strip().endswith(f"v{version} serves")
    )
    manifest = (gitops / "fraud" / f"{name}.inferenceservice.yaml").read_text()
    assert f"storageUri: s3://models/{name}/v{version}-{registration['artifact_sha256'][:12]}" in manifest
