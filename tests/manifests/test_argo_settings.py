"""Argo's controller settings: the platform's keys merge into the cluster's ConfigMap, and a run's
record outlives its Workflow in the archive.

issue 28: `manifests/base/argo/argo.yaml` replaced `workflow-controller-configmap` whole, so
applying it erased the cluster's SSO, archive and metrics settings; Workflows were deleted after
7 or 14 days with no archive, so the run history an auditor asks for was gone.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
OVERLAYS = ("dev", "prod")
NEEDED = {
    # the keys the platform needs, each with why; everything else in the ConfigMap is the cluster's
    "workflowDefaults": "how long a finished Workflow stays (ttlStrategy) and podGC",
    "persistence": "the workflow archive: the run history outlives the Workflow",
    "executor": "Argo's init and wait containers pass the restricted Pod Security profile",
    "namespaceParallelism": "one tenant's burst cannot hold every running slot",
}
CLUSTER_KEYS = {"sso", "metricsConfig", "telemetryConfig", "artifactRepository", "parallelism", "links", "config"}
"""Keys a cluster sets for itself (the issue names SSO, archive and metrics); `config` is Argo's
single-key form, which refuses every other key beside it (config/controller.go, parseConfigMap)."""
PERSIST_FIELDS = {
    # argo-workflows config/config.go at the commit of ../shared/schemas (SOURCES.tsv): PersistConfig,
    # DBConfig, ConnectionPool, DatabaseConfig, PostgreSQLConfig; the controller reads them strictly
    "persistence": {
        "postgresql",
        "mysql",
        "connectionPool",
        "reconnectionConfig",
        "connectionTimeoutSeconds",
        "nodeStatusOffLoad",
        "archive",
        "archiveLabelSelector",
        "archiveTTL",
        "clusterName",
        "skipMigration",
    },
    "connectionPool": {"maxIdleConns", "maxOpenConns", "connMaxLifetime"},
    "postgresql": {
        "host",
        "port",
        "database",
        "tableName",
        "userNameSecret",
        "passwordSecret",
        "ssl",
        "sslMode",
        "azureToken",
        "awsRDSToken",
    },
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(MANIFESTS / "overlays" / name) for name in OVERLAYS}


def find(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    return next(
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["name"] == name and namespace in (None, o["metadata"].get("namespace"))
    )


def controller(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "ConfigMap", "workflow-controller-configmap", "argo")


def ttl_seconds(value: str) -> int:
    """Argo's TTL (config/ttl.go): an integer with a d, h, m or s suffix."""
    match = re.fullmatch(r"(\d+)([dhms])", value)
    assert match, f"{value!r} is no TTL Argo reads"
    return int(match.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[match.group(2)]


def problems(config: dict[str, Any]) -> list[str]:
    """What stops a ConfigMap from merging into the cluster's controller settings."""
    from pipelines.argo_settings import FIELD_MANAGER

    found = [f"{key}: not a key the platform needs" for key in sorted(set(config.get("data", {})) - set(NEEDED))]
    found += [f"{key}: the cluster's" for key in sorted(set(config.get("data", {})) & CLUSTER_KEYS)]
    annotations = config["metadata"].get("annotations", {})
    if annotations.get("argocd.argoproj.io/sync-options") != "ServerSideApply=true":
        found.append("Argo CD would apply it client-side")
    if f"field manager {FIELD_MANAGER}" not in annotations.get("mlops.private-platform.io/apply", ""):
        found.append("does not say it is applied server-side by its own field manager")
    return found


SHIPPED_BEFORE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: workflow-controller-configmap, namespace: argo}
data:
  parallelism: "20"
  namespaceParallelism: "8"
  podGCGracePeriodSeconds: "60"
  workflowDefaults: "spec: {ttlStrategy: {secondsAfterSuccess: 604800, secondsAfterFailure: 1209600}}"
  executor: "securityContext: {runAsNonRoot: true}"
  nodeEvents: "enabled: true"
"""
"""The ConfigMap manifests/base/argo/argo.yaml carried before (commit ab79251), abridged values."""


def test_the_controller_config_carries_only_the_platforms_keys_applied_server_side(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """issue 28: the platform's ConfigMap replaced the cluster's whole. It now holds only the keys
    the platform needs, never Argo's single `config` key, and says it is applied server-side
    (per data key) by its own field manager (tests/test_install_doc.py: the guide applies with it)."""
    for name, objects in rendered.items():
        config = controller(objects)
        assert problems(config) == [], name
        assert set(config["data"]) == set(NEEDED), (name, set(config["data"]) ^ set(NEEDED))
        assert all(isinstance(value, str) for value in config["data"].values())  # a ConfigMap's data: strings


def test_the_check_refuses_the_full_replacement_shipped_before() -> None:
    """The control broken on purpose: the check above refuses what argo.yaml shipped before, and a
    rendered ConfigMap with a cluster key added."""
    assert problems(yaml.safe_load(SHIPPED_BEFORE)) == [
        "nodeEvents: not a key the platform needs",
        "parallelism: not a key the platform needs",
        "podGCGracePeriodSeconds: not a key the platform needs",
        "parallelism: the cluster's",
        "Argo CD would apply it client-side",
        "does not say it is applied server-side by its own field manager",
    ]
    from pipelines.argo_settings import controller_config

    config = controller_config()
    assert problems(config) == []  # positive control
    config["data"]["sso"] = "issuer: https://dex.example"
    assert problems(config) == ["sso: not a key the platform needs", "sso: the cluster's"]


def test_every_finished_workflow_is_archived_for_longer_than_it_lives(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """issue 28: no archive, so a run's record went with its Workflow. The archive keeps it
    longer than the controller's default TTL and than the TTL any reference pipeline sets."""
    from pipelines.golden import ARGO_FILES, golden_dir, reference_pipelines

    lifetimes: list[int] = []
    for pipeline in reference_pipelines():
        for file in ARGO_FILES.values():
            document = yaml.safe_load((golden_dir(pipeline) / file).read_text())
            spec = document["spec"].get("workflowSpec", document["spec"])
            lifetimes += [int(v) for k, v in spec.get("ttlStrategy", {}).items() if k.startswith("secondsAfter")]
    assert lifetimes, "no reference pipeline sets a ttlStrategy"
    for name, objects in rendered.items():
        data = controller(objects)["data"]
        defaults = yaml.safe_load(data["workflowDefaults"])["spec"]["ttlStrategy"]
        persistence = yaml.safe_load(data["persistence"])
        assert persistence["archive"] is True, name
        assert "archiveLabelSelector" not in persistence, name  # every Workflow, not a chosen few
        longest = max([int(v) for v in defaults.values()] + lifetimes)
        assert ttl_seconds(persistence["archiveTTL"]) > longest, (name, persistence["archiveTTL"], longest)
        # Argo reads its config strictly: an unknown field stops the controller
        assert set(persistence) <= PERSIST_FIELDS["persistence"], set(persistence) - PERSIST_FIELDS["persistence"]
        for section in ("connectionPool", "postgresql"):
            assert set(persistence[section]) <= PERSIST_FIELDS[section], (section, persistence[section])


def test_the_archive_reaches_its_own_database_through_pgbouncer_in_session_pooling(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """issue 28: the archive's host is the rendered PgBouncer Service at its port; PgBouncer routes
    the database in session pooling (lib/pq sends Parse+Describe+Sync before Bind+Execute+Sync
    on the unnamed statement, which transaction pooling can split across servers); the Cluster
    makes its role with the Secret the controller reads, the tenant-databases Job its database;
    and both archive clients together stay within PgBouncer's pool."""
    from pipelines.argo_settings import ARCHIVE_CLIENTS

    for name, objects in rendered.items():
        archive = yaml.safe_load(controller(objects)["data"]["persistence"])
        database = archive["postgresql"]
        service, _, namespace = database["host"].removesuffix(".svc").partition(".")
        ports = find(objects, "Service", service, namespace)["spec"]["ports"]
        assert database["port"] in {p["port"] for p in ports}, (name, ports)
        ini = find(objects, "ConfigMap", "pgbouncer", namespace)["data"]["pgbouncer.ini"]
        routes = dict(line.split(" = ", 1) for line in ini.split("[pgbouncer]")[0].splitlines()[1:])
        assert f"dbname={database['database']}" in routes[database["database"]], name
        assert "pool_mode=session" in routes[database["database"]].split(), (name, routes[database["database"]])
        settings = dict(
            line.split(" = ", 1) for line in ini.split("[pgbouncer]")[1].split("[users]")[0].splitlines()[1:]
        )
        assert settings["pool_mode"] == "transaction"  # every other database stays in transaction pooling
        assert len(ARCHIVE_CLIENTS) * archive["connectionPool"]["maxOpenConns"] <= int(settings["default_pool_size"])
        assert database["ssl"] is any(key.startswith("client_tls") for key in settings), name
        secret = database["userNameSecret"]["name"]
        assert database["passwordSecret"]["name"] == secret
        assert {database["userNameSecret"]["key"], database["passwordSecret"]["key"]} == {"username", "password"}
        roles = {r["name"]: r for r in find(objects, "Cluster", "mlops-postgres")["spec"]["managed"]["roles"]}
        role = secret.removesuffix("-db-credentials")
        assert roles[role]["passwordSecret"]["name"] == secret and roles[role]["login"] is True, name
        job_sql = next(
            o["data"]["tenants.sql"] for o in objects if o["kind"] == "ConfigMap" and "tenants.sql" in o.get("data", {})
        )
        assert f"'CREATE DATABASE %I OWNER %I', '{database['database']}', '{role}'" in job_sql, name


def test_the_archives_secret_is_created_out_of_band_where_it_is_read() -> None:
    """issue 28: the controller and the server read the archive's credentials in Argo's namespace;
    CloudNativePG reads the role's password in the platform's. Both are in the install guide's
    list of Secrets created out of band, with the keys they are read by."""
    from pipelines.argo_settings import ARCHIVE_SECRET, ARGO_NAMESPACE
    from pipelines.cluster import PLATFORM_NAMESPACE

    listed = yaml.safe_load((MANIFESTS / "out-of-band-secrets.yaml").read_text())["secrets"]
    rows = {(row["namespace"], row["name"]): set(row["keys"]) for row in listed}
    for namespace in (ARGO_NAMESPACE, PLATFORM_NAMESPACE):
        assert rows.get((namespace, ARCHIVE_SECRET), set()) >= {"username", "password"}, namespace


def test_argos_own_containers_come_from_a_registry_the_platform_admits(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """issue 28 (admission the platform passes itself): no executor image was set, so Argo's init
    and wait containers came from quay.io/argoproj/argoexec, and `internal-registry-only` (which
    matches every Pod) would refuse every step pod. The executor image is the mirrored one, and a
    registry outside the rendered Constraint's list is seen."""
    for name, objects in rendered.items():
        constraint = next(o for o in objects if o["kind"] == "K8sAllowedRegistries")
        registries = constraint["spec"]["parameters"]["registries"]
        image = yaml.safe_load(controller(objects)["data"]["executor"]).get("image", "quay.io/argoproj/argoexec")
        assert any(image.startswith(prefix) for prefix in registries), (name, image, registries)
        assert not any("quay.io/argoproj/argoexec:v4.1.2".startswith(prefix) for prefix in registries)
