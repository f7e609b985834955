"""The tenant declaration (manifests/tenants/tenants.yaml) is the one source of everything that
names a tenant (issue 28, item 1): the Feast CronJobs refresh the stores the tenant reads, a new
tenant appears everywhere from one `mlops tenant add --cluster`, and a bad name writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.golden import MANIFESTS, platform_manifests
from pipelines.tenancy import load
from tests.cli_runner import mlops


def _documents(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_each_feast_cronjob_refreshes_the_stores_its_tenants_pipelines_read() -> None:
    """issue 28: the Feast CronJob refreshed stores no tenant reads (feast_registry and
    redis.mlops.svc, in namespace mlops). Every rendered refresh now runs in a tenant's namespace
    on that namespace's mlops-platform ConfigMap, whose registry is feast_<tenant> and whose Redis
    is the tenant's own; and there is one for every installed pipeline of that tenant."""
    assert not (MANIFESTS / "base" / "feast" / "feast.yaml").exists()
    seen = 0
    for tenant in load(MANIFESTS).tenants:
        folder = MANIFESTS / "tenants" / tenant.name
        configmap = _documents(folder / "mlops-platform.yaml")[0]["data"]
        assert configmap["MLOPS_FEAST_REGISTRY_URL"].endswith(f"/feast_{tenant.name}")
        assert configmap["MLOPS_FEAST_REDIS"].startswith(f"redis.{tenant.name}.svc")
        jobs = _documents(folder / "feast-materialize.yaml") if (folder / "feast-materialize.yaml").exists() else []
        for job in jobs:
            seen += 1
            assert job["metadata"]["namespace"] == tenant.name
            container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            assert {"configMapRef": {"name": "mlops-platform"}} in container["envFrom"]
            literal = {e["name"] for e in container.get("env", []) if "value" in e}
            assert not literal & {"MLOPS_FEAST_REGISTRY_URL", "MLOPS_FEAST_REDIS"}, "an endpoint of its own"
    assert seen >= 2  # fraud's and forecast's pipelines


@pytest.mark.parametrize(
    ("name", "says"),
    [("Fraud_2", "DNS"), ("mlops", "mlops"), ("argo", "argo"), ("kube-system", "kube-system"), ("fraud", "fraud")],
)
def test_a_bad_or_taken_tenant_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str, says: str) -> None:
    """issue 28: a name that is not a DNS label, or collides with a platform or operator namespace,
    or is already declared, is refused (exit 2, naming the fix) before anything is written."""
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    before = (manifests / "tenants" / "tenants.yaml").read_text()
    done = mlops("tenant", "add", name, "--cluster", "--owner", "x@bank.internal", "--manifests", str(manifests))
    assert done.returncode == 2, done.stdout + done.stderr
    assert says.lower() in done.stderr.lower(), done.stderr
    assert (manifests / "tenants" / "tenants.yaml").read_text() == before


def test_a_tenant_added_once_is_rendered_everywhere_that_names_tenants(tmp_path: Path) -> None:
    """issue 28: adding a tenant meant writing folders by hand and editing three lists. One
    `mlops tenant add --cluster` now makes `make golden` render its namespace, kustomization and
    quota, its PostgreSQL role and database, its PgBouncer route and cap, its catch-all alert route
    to its owner, and its rows in the restricted-scheduling Constraint; and the committed
    manifests are stale (the golden check fails) until that rendering is written."""
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    done = mlops(
        "tenant", "add", "payments", "--cluster", "--owner", "payments-ml@bank.internal", "--gpu",
        "--manifests", str(manifests),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = {path.relative_to(manifests).as_posix(): text for path, text in platform_manifests(manifests).items()}
    stale = [p for p, text in rendered.items() if not (manifests / p).is_file() or (manifests / p).read_text() != text]
    assert "tenants/payments/namespace.yaml" in stale and "base/postgres/roles.yaml" in stale
    files = ("namespace.yaml", "kustomization.yaml", "quota.yaml", "mlops-platform.yaml", "alertmanager-config.yaml")
    for file in files:
        assert f"tenants/payments/{file}" in rendered, file
    roles = yaml.safe_load(rendered["base/postgres/roles.yaml"].split("\n", 1)[1])
    assert "payments" in {role["name"] for role in roles["spec"]["managed"]["roles"]}
    # its own PgBouncer (issue 29), which the platform's no longer routes for it
    assert "dbname=feast_payments" in rendered["base/postgres/tenant-poolers.yaml"]
    assert "feast_payments" not in rendered["base/postgres/pgbouncer-config.yaml"]
    assert "tenants/payments/pgbouncer-egress.yaml" in rendered
    assert "feast_payments" in rendered["base/postgres/tenant-databases.yaml"]
    assert "payments-ml@bank.internal" in rendered["tenants/payments/alertmanager-config.yaml"]
    constraint = yaml.safe_load(rendered["policies/restricted-scheduling-constraint.yaml"].split("\n", 1)[1])
    rows = constraint["spec"]["parameters"]["tolerations"]
    assert any("payments" in row["namespaces"] for row in rows)
