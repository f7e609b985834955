"""The fidelity run's tenant, as the cluster gives it to a pipeline pod (tests/integration/
test_cluster_fidelity.py, benchmarks/fidelity_bench.py): the tenant's mlops-platform ConfigMap as
rendered, its Services rewritten to loopback; its Secrets as the platform team creates them,
written out as data; its artifact repository as kustomize renders it; and what KServe's controller
gives the storage initializer for the predictor's ServiceAccount."""

from __future__ import annotations

import re
from typing import Any

import yaml

from devstack.stack import Stack
from devstack.tenants import Tenant
from pipelines.cluster import cluster_settings, platform_configmap
from pipelines.tenant_pooler import pooler_name
from tests.conftest import REPO
from tests.rendered_manifests import render as kustomize

TENANT = "fraud"
RAW = "s3://feast-offline/fraud/raw/latest.parquet"
"""The night's data, where the tenant's prefix-scoped key may read it (`-p raw-data=...`): the
config's cluster.raw_data (s3://fraud-data/...) is in no bucket a tenant's key reaches."""


def tenant_secrets(tenant: Tenant) -> dict[str, dict[str, str]]:
    """The tenant namespace's Secrets as the platform team creates them (manifests/
    out-of-band-secrets.yaml), written out as data: Secret name -> key -> value."""
    return {
        "tenant-s3-credentials": {"access-key": tenant.access_key, "secret-key": tenant.secret_key},
        "tenant-mlflow-credentials": {"username": tenant.name, "password": tenant.password},
        "tenant-feast-credentials": {"password": tenant.password},
        "tenant-redis-credentials": {"password": tenant.password},
    }


SERVICE = re.compile(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)")


def loopback_configmap(stack: Stack, tenant: Tenant) -> dict[str, str]:
    """The tenant's mlops-platform ConfigMap as the cluster renders it, each in-cluster Service
    rewritten to the loopback port of the service that plays it here; one it has no player for
    is an error, not a silent default."""
    players = {
        "minio": stack.ports.s3,
        "mlflow": stack.ports.mlflow,
        pooler_name(TENANT): tenant.pgbouncer_port,  # the tenant's own PgBouncer (issue 29)
        "redis": tenant.redis_port,
        "pushgateway": stack.monitoring_services().ports["pushgateway"],
    }

    def loopback(match: re.Match[str]) -> str:
        if match.group(1) not in players:
            raise KeyError(f"nothing plays {match.group(0)} on the loopback stack")
        return f"127.0.0.1:{players[match.group(1)]}"

    data = platform_configmap(TENANT, cluster_settings(TENANT))["data"]
    return {key: SERVICE.sub(loopback, value) for key, value in data.items()}


def artifact_repository(namespace: str) -> dict[str, Any]:
    """The `s3` block of the tenant's artifact-repositories ConfigMap, as rendered by kustomize."""
    objects = kustomize(REPO / "manifests" / "tenants" / namespace)
    configmap = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "artifact-repositories"
    )
    key = configmap["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    repository: dict[str, Any] = yaml.safe_load(configmap["data"][key])["s3"]
    return repository


def storage_initializer_environment(secret: dict[str, Any], data: dict[str, str]) -> dict[str, str]:
    """What KServe's controller gives the storage-initializer container for a ServiceAccount's S3
    Secret (pkg/credentials/s3: BuildSecretEnvs and BuildS3EnvVars), re-stated here as test code."""
    notes = secret["metadata"]["annotations"]
    prefix = "serving.kserve.io/"
    env = {"AWS_ACCESS_KEY_ID": data["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": data["AWS_SECRET_ACCESS_KEY"]}
    if f"{prefix}s3-endpoint" in notes:
        endpoint = notes[f"{prefix}s3-endpoint"]
        scheme = "https"
        if f"{prefix}s3-usehttps" in notes:
            env["S3_USE_HTTPS"] = notes[f"{prefix}s3-usehttps"]
            scheme = "http" if notes[f"{prefix}s3-usehttps"] == "0" else "https"
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = f"{scheme}://{endpoint}"
    if f"{prefix}s3-verifyssl" in notes:
        env["S3_VERIFY_SSL"] = notes[f"{prefix}s3-verifyssl"]
    if f"{prefix}s3-region" in notes:
        env["AWS_DEFAULT_REGION"] = notes[f"{prefix}s3-region"]
    return env
