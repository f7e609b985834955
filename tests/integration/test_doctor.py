"""`mlops doctor` finds each seeded misconfiguration on real services, with its fix.

Live checks run against the test stack's real S3, MLflow, PostgreSQL (direct and through
PgBouncer) and Redis, each misconfigured for the test and put back afterwards. Clock skew
cannot be seeded on a server here, so the doctor's own clock is shifted instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from devstack.stack import DB_USER, Stack
from mlops.doctor import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Context,
    check_clock_skew,
    check_metadata_timeout,
    check_platform_settings,
    check_postgres_connections,
    check_redis_memory,
    check_s3_endpoint,
    check_s3_signature,
    check_tracking_artifacts,
    diagnose,
)

pytestmark = pytest.mark.integration


def context(stack: Stack, **changes: str) -> Context:
    env = {**stack.environment(), **changes}
    return Context(env={key: value for key, value in env.items() if value}, objects=[])


def test_a_healthy_platform_passes_every_live_check(stack: Stack) -> None:
    findings = {finding.check: finding for finding in diagnose(context(stack))}
    live = ["platform-settings", "s3-endpoint", "s3-signature", "aws-metadata-timeout", "tracking-artifacts"]
    live += ["postgres-connections", "redis-memory", "clock-skew"]
    assert {name: findings[name].status for name in live} == dict.fromkeys(live, OK)


def test_missing_s3_endpoint(stack: Stack) -> None:
    no_endpoint = {"MLFLOW_S3_ENDPOINT_URL": "", "AWS_ENDPOINT_URL": "", "FSSPEC_S3_ENDPOINT_URL": ""}
    finding = check_s3_endpoint(context(stack, **no_endpoint))
    assert finding.status == FAIL
    assert "MLFLOW_S3_ENDPOINT_URL is not set" in finding.detail and "MLFLOW_S3_ENDPOINT_URL" in finding.fix
    settings = check_platform_settings(context(stack, **no_endpoint))
    assert settings.status == FAIL and "MLFLOW_S3_ENDPOINT_URL" in settings.detail
    assert "mlops-platform ConfigMap" in settings.fix


def test_signature_v2_in_the_aws_config(stack: Stack, tmp_path: Path) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    signature_version = s3\n")
    finding = check_s3_signature(context(stack, AWS_CONFIG_FILE=str(config)))
    assert finding.status == FAIL
    assert "v2" in finding.detail and "s3v4" in finding.fix


def test_metadata_timeout_unset(stack: Stack) -> None:
    finding = check_metadata_timeout(context(stack, AWS_METADATA_SERVICE_TIMEOUT=""))
    assert finding.status == WARN
    assert "AWS_METADATA_SERVICE_TIMEOUT=1" in finding.fix


def test_tracking_server_reachable_but_artifacts_not(stack: Stack) -> None:
    finding = check_tracking_artifacts(context(stack, AWS_SECRET_ACCESS_KEY="wrong"))
    assert finding.status == FAIL
    assert f"tracking server {stack.tracking_uri} is up, but its artifacts are not" in finding.detail
    assert "AWS_SECRET_ACCESS_KEY" in finding.fix


def test_tracking_server_unreachable(stack: Stack) -> None:
    finding = check_tracking_artifacts(context(stack, MLFLOW_TRACKING_URI="http://127.0.0.1:9"))
    assert finding.status == FAIL
    assert "MLflow tracking server at http://127.0.0.1:9" in finding.detail


def test_few_connections_without_pgbouncer_and_the_same_through_it(small_postgres: Stack) -> None:
    direct = f"postgresql://{DB_USER}:{small_postgres.db_password}@127.0.0.1:{small_postgres.ports.postgres}/feast"
    pooled = f"postgresql://{DB_USER}:{small_postgres.db_password}@127.0.0.1:{small_postgres.ports.pgbouncer}/feast"
    exposed = check_postgres_connections(
        Context(env={"MLOPS_DOCTOR_POSTGRES_URL": direct}, objects=[], planned_writers=30)
    )
    assert exposed.status == FAIL
    assert "max_connections 10 (7 for applications) < 30 planned" in exposed.detail
    assert "PgBouncer" in exposed.fix
    safe = check_postgres_connections(
        Context(env={"MLOPS_DOCTOR_POSTGRES_URL": pooled}, objects=[], planned_writers=30)
    )
    assert safe.status == OK and "pooler" in safe.detail


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [("maxmemory", "0", "no maxmemory"), ("maxmemory-policy", "noeviction", "noeviction")],
)
def test_redis_without_a_memory_bound_or_eviction(stack: Stack, setting: str, value: str, expected: str) -> None:
    client = redis.Redis(port=stack.ports.redis)
    before = client.config_get(setting)[setting]
    client.config_set(setting, value)
    try:
        finding = check_redis_memory(context(stack))
    finally:
        client.config_set(setting, before)
    assert finding.status == FAIL
    assert expected in finding.detail and "allkeys-lru" in finding.fix


@pytest.mark.parametrize(("shift", "status"), [(0.0, OK), (-120.0, WARN), (-900.0, FAIL), (900.0, FAIL)])
def test_clock_skew_against_the_s3_server(stack: Stack, shift: float, status: str) -> None:
    import time

    ctx = context(stack)
    ctx.now = lambda: time.time() + shift
    finding = check_clock_skew(ctx)
    assert finding.status == status, finding


def test_manifest_checks_skip_without_manifests(stack: Stack) -> None:
    findings = {finding.check: finding.status for finding in diagnose(context(stack))}
    assert findings["gpu-memory-limit"] == SKIP and findings["canary-deployment-mode"] == SKIP


def test_the_promoted_inference_service_passes_the_manifest_checks(platform_run: dict[str, Any]) -> None:
    from mlops.doctor import load_objects

    objects = load_objects(platform_run["run_dir"] / "promote" / "inference_service")
    findings = {f.check: f for f in diagnose(Context(env={}, objects=objects))}
    assert findings["gpu-min-scale"].status == OK
    assert findings["canary-deployment-mode"].status == OK
    assert findings["gpu-memory-limit"].status == OK
