"""Real platform services for the integration suite, started by the tests themselves.

One stack per session on free ports (never the developer's default 15400...), with its data in
a temporary folder: PostgreSQL 15, PgBouncer, Redis 7, SeaweedFS S3 and an MLflow server whose
backend goes through PgBouncer. The fraud pipeline runs on it once; drills read its outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack import process
from devstack.stack import DB_USER, PORT_SPAN, Ports, Stack
from pipelines.tenancy import load as load_tenants
from tests import cli_runner
from tests.conftest import REPO

PIPELINE_ROWS = "20000"
DECLARED_TENANTS = tuple(load_tenants(REPO / "manifests").names)
"""manifests/tenants/tenants.yaml's tenants, the cluster's too."""


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Not under pytest's tmp folder: that is private to root (0700), and PostgreSQL runs as its
    # own user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="mlops-services-"))
    root.chmod(0o755)
    services = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    try:
        services.up()
        yield services
    finally:
        services.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tenancy_stack() -> Iterator[Stack]:
    """The stack of `mlops dev up --tenancy`: MLflow's basic-auth app, default permission
    NO_PERMISSIONS. Each module adds the tenants it needs (devstack.tenants.add_tenant, idempotent):
    the tenancy tests and the fidelity run, which runs as tenant fraud, share it."""
    root = Path(tempfile.mkdtemp(prefix="mlops-tenancy-"))
    root.chmod(0o755)
    services = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)), mlflow_auth=True)
    try:
        services.up()
        yield services
    finally:
        services.monitoring_services().down()
        services.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tenants_stack(tenancy_stack: Stack) -> Stack:
    """The session's tenancy stack with every declared tenant on it (DECLARED_TENANTS; add_tenant is
    idempotent, so a module that adds one of them itself shares it)."""
    from devstack.tenants import add_tenant

    for name in DECLARED_TENANTS:
        add_tenant(tenancy_stack, name)
    return tenancy_stack


@pytest.fixture(scope="session")
def lock_attack_stack() -> Iterator[Stack]:
    """A tenancy stack of its own with every declared tenant on it, for the tests whose attacker is a
    tenant's S3 key on the registry's locked buckets (test_immutable_artifacts, test_served_bytes_stack).
    On the shared tenancy stack, after the fidelity and decisions modules, two fresh-clone CI runs saw
    the fraud key refused as unknown (InvalidAccessKeyId) on its first write to a locked bucket: MLflow's
    S3 client, cached per endpoint and not per key, and boto3's default session still signed with an
    earlier test's key in that worker process. temporary_env now drops both (components/environment.py,
    tests/components/test_environment_clients.py); a stack of their own keeps these attacks apart too."""
    from devstack.tenants import add_tenant

    root = Path(tempfile.mkdtemp(prefix="mlops-lock-attack-"))
    root.chmod(0o755)
    services = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)), mlflow_auth=True)
    try:
        services.up()
        for name in DECLARED_TENANTS:
            add_tenant(services, name)
        yield services
    finally:
        services.monitoring_services().down()
        services.down()
        shutil.rmtree(root, ignore_errors=True)


def platform_env(stack: Stack, home: Path, **overrides: str) -> dict[str, str]:
    """The environment a user gets from `eval "$(mlops dev env)"`, with one MLOPS_HOME."""
    env = {**os.environ, **stack.environment(), "MLOPS_HOME": str(home), **overrides}
    return {key: value for key, value in env.items() if value != ""}


def mlops(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`mlops ARGS` in `env` (platform_env's, as a rule): the tests' one runner, environment first."""
    return cli_runner.mlops(*args, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def platform_run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`mlops run fraud` with the platform profile: nothing but the environment differs. The data is
    a dated extract, as upstream lands one a day (`--data .../{date}/events.parquet --date`), so the
    lineage and reproduce tests read a dated run back (components/dated_inputs.py)."""
    home = tmp_path_factory.mktemp("platform-home")
    env = platform_env(stack, home)
    extract = home / "extracts" / PLATFORM_RUN_DATE / "events.parquet"
    written = mlops(env, "data", "fraud", "--rows", PIPELINE_ROWS, "--out", str(extract))
    assert written.returncode == 0, written.stdout + written.stderr
    template = str(home / "extracts" / "{date}" / "events.parquet")
    result = mlops(env, "run", "fraud", "--data", template, "--date", PLATFORM_RUN_DATE)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = max((home / "kfp-runs").iterdir(), key=lambda p: p.stat().st_mtime)
    registration = json.loads((run_dir / "register" / "registration").read_text())
    return {
        "home": home,
        "env": env,
        "run_dir": run_dir,
        "registration": registration,
        "stdout": result.stdout,
        "extract": extract,
    }


PLATFORM_RUN_DATE = "2026-12-01"
"""The logical date of the platform run's extract."""


@pytest.fixture(scope="session")
def small_postgres() -> Iterator[Stack]:
    """PostgreSQL with max_connections=10 (7 for applications) and PgBouncer pooling 4 of them."""
    root = Path(tempfile.mkdtemp(prefix="mlops-small-pg-"))
    root.chmod(0o755)
    small = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)), max_connections=10, pool_size=4)
    try:
        small.up(("postgres", "pgbouncer"))
        with psycopg.connect(
            host="127.0.0.1", port=small.ports.postgres, dbname="feast", user=DB_USER, password=small.db_password
        ) as connection:
            connection.execute("create table if not exists writes (writer int, at timestamptz default now())")
        yield small
    finally:
        small.down()
        shutil.rmtree(root, ignore_errors=True)
