"""The scoring transformer's decision log is written with the tenant's decisions writer, not the tenant's
own S3 key (issue 32): on the cluster from the tenant-decisions-credentials Secret, on the loopback stack
from `mlops tenant env`'s MLOPS_DECISIONS_AWS_*. Files and rendering only; the key's rights on the real
SeaweedFS are tests/integration/test_decisions_writer.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import ClusterSettings
from components.platform.buckets import TENANT_BUCKETS
from components.steps.serving_decisions import DECISIONS_CREDENTIALS_SECRET, S3_KEYS, decision_log_environment
from devstack.stack import Ports, Stack
from devstack.tenants import Tenant, decisions_writer_actions, s3_actions, tenant_environment
from devstack.transformer import DECISIONS_VARIABLES, LocalTransformer, decisions_writer_variables
from mlops.isolation import SURFACES
from tests.conftest import REPO

TENANT = Tenant("fraud", "fraud-key", "fraud-secret", "fraud-pw", "reader-pw", 0, 0, "fraud-decisions-k", "dsecret")


def test_the_transformer_takes_its_s3_key_from_the_decisions_writers_secret() -> None:
    """Positive: AWS_* come from tenant-decisions-credentials, with S3_KEYS's keys. Negative: not
    from the tenant's own S3 Secret, the one its steps write models with."""
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in decision_log_environment("canary")
            if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    assert refs == {name: {"name": DECISIONS_CREDENTIALS_SECRET, "key": key} for name, key in S3_KEYS.items()}
    assert ClusterSettings.model_fields["s3_credentials_secret"].default != DECISIONS_CREDENTIALS_SECRET


def test_the_platform_team_is_told_to_create_the_writers_secret_in_each_tenant() -> None:
    rows = yaml.safe_load((REPO / "manifests" / "out-of-band-secrets.yaml").read_text())["secrets"]
    (row,) = [r for r in rows if r["name"] == DECISIONS_CREDENTIALS_SECRET]
    assert row["namespace"] == "each tenant" and row["keys"] == list(S3_KEYS.values())
    assert "decisions/{tenant}/*" in row["why"]


def test_the_writer_may_write_its_own_decisions_prefix_only() -> None:
    assert decisions_writer_actions("fraud") == ["Write:decisions/fraud/*"]
    own = s3_actions("fraud")  # its own key reads every tenant bucket (writes: tests/test_decision_evidence.py)
    assert {action.split(":")[1] for action in own if action.startswith("Read:")} == {
        f"{bucket}/fraud/*" for bucket in TENANT_BUCKETS
    }
    assert set(decisions_writer_actions("fraud", broadened=True)) == set(s3_actions("fraud", broadened=True))


def test_tenant_env_exports_the_writer_and_the_local_transformer_takes_it_over_the_tenants_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops tenant env` keeps AWS_* the tenant's (its steps) and adds MLOPS_DECISIONS_AWS_*; the local
    transformer's process gets the writer's key as AWS_*. A tenant without a writer (an older tenant
    file) exports none, and a half-set pair is not taken: the transformer keeps the key it inherits."""
    from devstack import transformer as local

    env = tenant_environment(Stack(root=tmp_path, ports=Ports.from_base(15400)), TENANT)
    assert env["AWS_ACCESS_KEY_ID"] == "fraud-key"
    assert {env[name] for name in DECISIONS_VARIABLES.values()} == {"fraud-decisions-k", "dsecret"}
    older = Tenant("fraud", "fraud-key", "fraud-secret", "fraud-pw")
    assert not set(DECISIONS_VARIABLES.values()) & set(tenant_environment(Stack(root=tmp_path), older))
    half = {"MLOPS_DECISIONS_AWS_ACCESS_KEY_ID": "k"}
    assert decisions_writer_variables(half) == {} and decisions_writer_variables({}) == {}

    started: dict[str, Any] = {}
    monkeypatch.setattr(local, "transformer_venv", lambda: tmp_path / "venv")
    monkeypatch.setattr(local.process, "port_free", lambda port: True)
    monkeypatch.setattr(local.process, "start", lambda argv, log, pid, env, cwd: started.update(env) or 1)
    monkeypatch.setattr(local.process, "wait_until", lambda *args, **kwargs: 0.0)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    transformer = LocalTransformer(root=tmp_path / "run", model_name="m", predictor_grpc="127.0.0.1:1", http_port=1,
                                   grpc_port=2, project="p", feature_service="s", entity_column="e",
                                   request_features=[])  # fmt: skip
    transformer.start()
    assert (started["AWS_ACCESS_KEY_ID"], started["AWS_SECRET_ACCESS_KEY"]) == ("fraud-decisions-k", "dsecret")


def test_the_isolation_check_tries_the_writer_where_a_subverted_transformer_would_write() -> None:
    (surface,) = [s for s in SURFACES if s.name == "decisions-writer"]
    assert [path for path, _ in surface.own] == ["own: decisions writer writes its decision log"]
    assert [path for path, _ in surface.probes] == [
        "decisions writer PUT into its models",
        "decisions writer PUT into its model artifacts",
        "decisions writer PUT into its pipeline artifacts",
        "decisions writer PUT into target decisions",
        "decisions writer GET its training data",
        "decisions writer GET its own decisions",
    ]
