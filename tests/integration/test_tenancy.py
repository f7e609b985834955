"""Three tenants on one set of services: isolation proven path by path, and broken on purpose.

A stack of its own with MLflow's basic-auth app (default permission NO_PERMISSIONS). The check
must report every path DENIED on the provisioned tenants, and LEAK once the S3 policy of one
tenant is broadened to whole buckets or MLflow's default permission is the shipped READ.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from devstack import process
from devstack.postgres import run_sql
from devstack.seaweedfs import filer_path
from devstack.stack import Stack
from devstack.tenants import (
    Tenant,
    add_tenant,
    get_tenant,
    tenant_process_environment,
    write_redis_acl,
    write_s3_identities,
)
from mlops.isolation import DENIED, ERROR, LEAK, OK, SURFACES, check
from tests.integration.conftest import DECLARED_TENANTS as TENANTS
from tests.integration.conftest import mlops

pytestmark = pytest.mark.integration
PROBES = sum(len(surface.probes) + len(surface.last) for surface in SURFACES)
CONTROLS = len({path for surface in SURFACES for path, _ in surface.own})  # a shared control runs once


@pytest.fixture(scope="module")
def shared(tenants_stack: Stack) -> Stack:
    """The session's tenancy stack with every declared tenant (tests/integration/conftest.py), and
    per-tenant monitoring (`mlops dev up --tenancy --monitoring`) so every surface is tried."""
    from devstack import tenant_monitoring
    from pipelines.tenant_monitoring import prometheus_scrape_config

    nowhere = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}
    tenant_monitoring.up(tenants_stack, TENANTS, prometheus_scrape_config, nowhere)
    return tenants_stack


def as_tenant(stack: Stack, name: str, home: Path) -> dict[str, str]:
    """Only what `eval "$(mlops tenant env <name>)"` gives: no platform variable leaks in from here."""
    return {**tenant_process_environment(stack, get_tenant(stack, name), os.environ), "MLOPS_HOME": str(home)}


@pytest.mark.parametrize(
    ("tenant", "pipeline", "model"),
    [("fraud", "fraud", "fraud-detector"), ("forecast", "forecast", "forecast-demand")],
)
def test_a_tenant_runs_its_own_pipeline_with_its_own_credentials_only(
    shared: Stack, tmp_path: Path, tenant: str, pipeline: str, model: str
) -> None:
    """The positive control the tenancy rests on: the whole pipeline, as the tenant, end to end."""
    result = mlops(as_tenant(shared, tenant, tmp_path), "run", pipeline, "--rows", "8000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{model} version 1 (new)" in result.stdout, result.stdout
    assert f"storageUri: s3://models/{tenant}/{model}/v1-" in result.stdout, result.stdout
    # everything it wrote is inside its own prefixes, and the registry holds it under its name
    admin = shared.s3_client()
    for bucket in ("mlflow-artifacts", "models"):
        keys = [
            o["Key"]
            for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        ]
        assert any(key.startswith(f"{tenant}/") for key in keys), (bucket, keys[:5])


def observed(stack: Stack, attacker: str, target: str, *surfaces: str) -> dict[str, str]:
    """The probes' outcomes (of the surfaces named; default all); the positive controls must all be
    OK for them to mean anything. A broken control needs only its own surface's rows."""
    attempts = check(stack, get_tenant(stack, attacker), get_tenant(stack, target), surfaces or None)
    own = {a.path: a.observed for a in attempts if a.expected == OK}
    assert own and set(own.values()) == {OK}, own
    return {a.path: a.observed for a in attempts if a.expected != OK}


@pytest.fixture(scope="module")
def pricing_into_fraud(shared: Stack) -> tuple[Tenant, Tenant, dict[str, str]]:
    """pricing's keys, its keys after `tenant add pricing` runs again, and every path from pricing
    into fraud checked once after that: the denied-paths test and the add-again test read this one
    check (a whole check is most of each test's time; issue 30, the suite's time budget)."""
    before = get_tenant(shared, "pricing")
    again = add_tenant(shared, "pricing")
    return before, again, observed(shared, "pricing", "fraud")


@pytest.mark.parametrize(("attacker", "target"), [("pricing", "fraud"), ("fraud", "forecast")])
def test_every_path_into_another_tenant_is_denied(
    shared: Stack, attacker: str, target: str, request: pytest.FixtureRequest
) -> None:
    if (attacker, target) == ("pricing", "fraud"):
        outcome = request.getfixturevalue("pricing_into_fraud")[2]
    else:  # the CLI's check, read from its table: one whole check for this test and the CLI's
        assert (attacker, target) == ("fraud", "forecast")
        rows = request.getfixturevalue("fraud_into_forecast_by_cli")[1]
        own = {path: seen for path, (expected, seen) in rows.items() if expected == OK}
        assert own and set(own.values()) == {OK}, own  # the positive controls, as observed() asserts
        outcome = {path: seen for path, (expected, seen) in rows.items() if expected != OK}
    assert len(outcome) == PROBES and PROBES >= 44, outcome  # every registered probe ran
    assert outcome == dict.fromkeys(outcome, DENIED)


def test_broken_attacker_credentials_are_errors_not_denials(shared: Stack) -> None:
    """With keys that do not work every path is refused; the check must say it proved nothing."""
    import dataclasses
    import os

    pricing = get_tenant(shared, "pricing")  # its transformer's decision-log key broken too
    broken = dataclasses.replace(pricing, secret_key="not-the-secret", password="not-it", decisions_secret_key="not-it")
    attempts = check(shared, broken, get_tenant(shared, "fraud"))
    controls = [a for a in attempts if a.expected == OK]
    assert controls and all(a.observed == ERROR for a in controls), controls
    s3_paths = [a for a in attempts if a.path.startswith("s3 ")]
    assert s3_paths
    proved_nothing = [a for a in s3_paths if a.observed != ERROR or "authentication failed" not in a.detail]
    assert not proved_nothing, proved_nothing
    assert not [a for a in attempts if a.path.startswith(("postgres", "feast")) and a.observed == DENIED]
    # the command refuses an attacker that is no tenant at all rather than report its paths denied
    arguments = ["isolation-check", "--as", "nobody", "--target", "fraud", "--dir", str(shared.root)]
    assert mlops(dict(os.environ), *arguments).returncode != 0


def test_adding_a_tenant_again_keeps_its_keys_and_its_isolation(
    pricing_into_fraud: tuple[Tenant, Tenant, dict[str, str]],
) -> None:
    before, again, outcome = pricing_into_fraud
    assert again == before
    assert outcome and set(outcome.values()) == {DENIED}


def table_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """isolation-check's table read back: {path: (expected, observed)}, by the header's columns."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("path ") and "  expected  " in line)
    width = lines[start].index("  expected  ")
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[start + 1 :]:
        if re.match(r"\d+ paths from ", line):
            return rows
        expected, seen = line[width:].split()[:2]
        rows[line[:width].rstrip()] = (expected, seen)
    raise AssertionError(f"no summary line after the table:\n{stdout[-3000:]}")


@pytest.fixture(scope="module")
def fraud_into_forecast_by_cli(shared: Stack) -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]]]:
    """`mlops isolation-check --as fraud --target forecast` run once, its output and its table's rows:
    the CLI test reads the output, the denied-paths test (fraud into forecast) the rows, instead of
    a whole check each (most of each test's time; the suite's time budget)."""
    arguments = ["isolation-check", "--as", "fraud", "--target", "forecast", "--dir", str(shared.root)]
    result = mlops(dict(os.environ), *arguments)
    assert "paths from fraud into forecast" in result.stdout, result.stdout + result.stderr
    return result, table_rows(result.stdout)


def test_the_cli_prints_the_table_and_exits_zero(
    fraud_into_forecast_by_cli: tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]]],
) -> None:
    result, rows = fraud_into_forecast_by_cli
    assert result.returncode == 0, result.stdout + result.stderr
    summary = f"{CONTROLS + PROBES} paths from fraud into forecast: {CONTROLS} own controls OK, {PROBES} denied"
    assert f"{summary}, 0 not as expected" in result.stdout, result.stdout
    assert len(rows) == CONTROLS + PROBES, rows  # a row per path (the denied-paths test reads them)


def test_a_broadened_s3_policy_is_reported_as_leaks(shared: Stack) -> None:
    # the refactor that widens a policy; the running server rereads s3.json (SIGHUP), no restart
    assert write_s3_identities(shared, frozenset({"pricing"})) == "reloaded"
    try:
        outcome = observed(shared, "pricing", "fraud", "s3", "tracking", "decisions")
    finally:
        restored = write_s3_identities(shared)
    assert restored == "reloaded"
    assert write_s3_identities(shared) == "unchanged"  # the server serves this file already
    for path in (
        "s3 GET target object",
        "s3 LIST target prefix",
        "s3 PUT into target prefix",
        "s3 HEAD target object",
        "s3 LIST v1 target prefix",
        "s3 COPY target object out",
        "s3 UploadPartCopy from target",
        "s3 multipart upload into target prefix",
        "s3 presigned GET target object",
        "s3 multi-delete target object",
    ):
        assert outcome[path] == LEAK, (path, outcome)
    assert outcome["s3 DELETE target object"] == LEAK, outcome
    for path in (  # the decision log (issue 32): another tenant's decisions read, listed, forged
        "decisions GET target decision file",
        "decisions PUT into target prefix",
        "decisions LIST target prefix",
        "decisions LIST whole bucket",
    ):
        assert outcome[path] == LEAK, (path, outcome)
    assert outcome["mlflow get target run"] == DENIED
    assert set(observed(shared, "pricing", "fraud", "s3", "decisions").values()) == {DENIED}


def test_a_tracking_server_as_mlflow_ships_it_is_reported_as_leaks(shared: Stack) -> None:
    """Default permission READ (MLflow's default), an S3 key on the server (a confused deputy), and
    MLflow's own authentication, which lets any user create any name (squatting).

    That server is a second one beside the session's, the same basic-auth app on the same databases
    (devstack.mlflow_server, its own folder, log and port): stopping the session's to restart it so,
    and back, cost two server starts where one does."""
    import dataclasses

    from mlflow import MlflowClient

    from components.environment import temporary_env
    from components.errors import ComponentError
    from devstack.mlflow_server import schema_at_head, start_mlflow

    ports = dataclasses.replace(shared.ports, mlflow=process.free_port_base(1))
    shipped = dataclasses.replace(
        shared, ports=ports, mlflow_default_permission="READ", mlflow_server_s3_key=True, mlflow_tenant_names=False
    )
    assert schema_at_head(shipped)  # the session's server migrated it: this start skips the migration
    try:
        start_mlflow(shipped, "mlflow-as-shipped")
        outcome = observed(shipped, "pricing", "fraud", "tracking", "s3")
        # a name squatted before its team arrives: `tenant add` refuses it rather than share it
        pricing = get_tenant(shipped, "pricing")
        with temporary_env({"MLFLOW_TRACKING_USERNAME": "pricing", "MLFLOW_TRACKING_PASSWORD": pricing.password}):
            MlflowClient(tracking_uri=shipped.tracking_uri).create_experiment("payments")
        with pytest.raises(ComponentError, match=r"experiment 'payments'.*another user"):
            add_tenant(shipped, "payments")
        assert not (shared.root / "tenants" / "payments.json").exists()
    finally:
        process.stop(shipped.pid_file("mlflow-as-shipped"))
    assert outcome["mlflow squat a model name in target's namespace"] == LEAK, outcome
    assert outcome["mlflow squat an experiment name in target's namespace"] == LEAK, outcome
    for path in (
        "mlflow get target run",
        "mlflow search target runs",
        "mlflow read target model",
        "mlflow get target model by alias",
        "mlflow search registered models",
        "mlflow search model versions",
        "mlflow search experiments",
    ):
        assert outcome[path] == LEAK, (path, outcome)
    assert outcome["mlflow forge target history tag"] == DENIED  # READ never writes
    assert outcome["mlflow artifact via own version (deputy)"] == LEAK, outcome
    assert outcome["s3 GET target object"] == DENIED


def test_secrets_files_on_a_running_stack_are_private(shared: Stack) -> None:
    files = [
        shared.state_file,
        shared.folder("pgbouncer") / "userlist.txt",
        shared.folder("s3") / "s3.json",
        shared.folder("mlflow") / "basic_auth.ini",
        *sorted((shared.root / "tenants").glob("*.json")),
    ]
    assert len(files) == 4 + len(TENANTS)
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        if file.parent != shared.root:
            assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700, file.parent
    assert stat.S_IMODE(shared.root.stat().st_mode) & 0o066 == 0
    assert stat.S_IMODE((shared.folder("postgres") / "sockets").stat().st_mode) == 0o700


def test_the_well_known_development_credentials_open_nothing(shared: Stack) -> None:
    """Positive control first: the stack's own generated credentials work; the old fixed ones do not."""
    import psycopg
    from botocore.exceptions import ClientError

    own = {"host": "127.0.0.1", "port": shared.ports.postgres, "dbname": "feast", "user": "mlops", "connect_timeout": 3}
    with psycopg.connect(**own, password=shared.db_password) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**own, password="mlops-dev")
    assert shared.s3_client().list_buckets()["Buckets"]
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        shared.s3_client("mlops-dev", "mlops-dev-secret").list_buckets()


@pytest.mark.skipif(not process.running_as_root(), reason="a second local user needs root to switch to (CI is root)")
def test_another_local_user_cannot_use_the_trusted_postgres_socket(shared: Stack) -> None:
    sockets = str(shared.folder("postgres") / "sockets")
    query = [process.find_binary("psql", "/usr/lib/postgresql/*/bin"), "-h", sockets, "-p", str(shared.ports.postgres)]
    query += ["-U", "postgres", "-d", "postgres", "-tAc", "select current_user"]
    own = subprocess.run(query, capture_output=True, text=True, check=False)
    assert own.returncode == 0 and own.stdout.strip() == "postgres", own.stderr  # the stack itself: setup path
    other = subprocess.run(["runuser", "-u", "nobody", "--", *query], capture_output=True, text=True, check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr, other.stdout + other.stderr


def test_reserved_and_squatted_tenant_names_are_refused(shared: Stack) -> None:
    """`tenant add admin` reset MLflow's admin password; a squatter kept MANAGE on the experiment it made."""
    from mlflow import MlflowClient

    from components.environment import temporary_env
    from components.errors import ComponentError

    for reserved in ("admin", "postgres"):
        with pytest.raises(ComponentError, match="reserved"):
            add_tenant(shared, reserved)
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": shared.admin_password}
    with temporary_env(admin):
        assert MlflowClient(tracking_uri=shared.tracking_uri).search_experiments()  # the admin still gets in
    # a tenant cannot squat a future team's name: it creates names only in its own namespace
    pricing = get_tenant(shared, "pricing")
    pricing_env = {"MLFLOW_TRACKING_USERNAME": "pricing", "MLFLOW_TRACKING_PASSWORD": pricing.password}
    with temporary_env(pricing_env):
        client = MlflowClient(tracking_uri=shared.tracking_uri)
        with pytest.raises(Exception, match=r"PERMISSION_DENIED|403") as refused:
            client.create_experiment("payments")
        assert "'pricing-<something>'" in str(refused.value)  # the message names the fix
        client.delete_experiment(client.create_experiment(f"pricing-own-{os.getpid()}"))  # its own: allowed
    # squatted while the rule was off (as MLflow ships): see test_a_tracking_server_as_mlflow_ships_it...


def test_a_redis_user_allowed_to_administer_is_reported_as_leaks(shared: Stack) -> None:
    pricing = get_tenant(shared, "pricing")
    write_redis_acl(shared, pricing, broadened=True)  # "+@all": what a tenant user got before
    try:
        outcome = observed(shared, "pricing", "fraud", "online-store")
    finally:
        write_redis_acl(shared, pricing)
    assert outcome["redis CONFIG SET"] == LEAK and outcome["redis FLUSHALL"] == LEAK, outcome
    assert outcome["redis SCAN target store"] == DENIED
    assert set(observed(shared, "pricing", "fraud", "online-store").values()) == {DENIED}


def test_one_redis_shared_by_two_tenants_is_reported_as_leaks(shared: Stack) -> None:
    """The design before each tenant had its own instance: one keyspace, Feast's keys told apart by suffix only."""
    import dataclasses

    fraud, pricing = get_tenant(shared, "fraud"), get_tenant(shared, "pricing")
    acl = shared.folder("redis-fraud") / "users.acl"
    acl.write_text(acl.read_text() + f"user pricing on >{pricing.password} ~* &* +@all -@admin -@dangerous\n")
    import redis

    redis.Redis(port=fraud.redis_port, username="admin", password=shared.redis_admin_password).execute_command(
        "ACL", "LOAD"
    )
    try:
        attempts = check(shared, dataclasses.replace(pricing, redis_port=fraud.redis_port), fraud, ["online-store"])
    finally:
        write_redis_acl(shared, fraud)
    outcome = {a.path: a.observed for a in attempts}
    assert outcome["own: redis own online store"] == OK, outcome
    assert outcome["redis SCAN target store"] == LEAK, outcome
    assert outcome["redis write target project keys"] == LEAK, outcome


def test_a_role_without_a_connection_limit_is_reported_as_a_leak(shared: Stack) -> None:
    """PgBouncer caps a tenant's pooled connections; a direct connection bypassed it until roles had a limit."""
    from components.platform.settings import TENANT_CONNECTION_LIMIT

    run_sql(shared, "postgres", "alter role pricing connection limit -1", superuser=True)
    try:
        outcome = observed(shared, "pricing", "fraud", "postgres")
    finally:
        run_sql(shared, "postgres", f"alter role pricing connection limit {TENANT_CONNECTION_LIMIT}", superuser=True)
    assert outcome["postgres connection exhaustion"] == LEAK, outcome
    assert outcome["postgres target schema"] == DENIED


def test_a_target_schema_in_a_database_the_attacker_reaches_is_reported_as_a_leak(shared: Stack) -> None:
    """Schemas in one shared `offline` database: the catalogs named every tenant's tables and columns."""
    database = "offline_pricing"
    run_sql(shared, database, "create schema if not exists fraud", superuser=True)
    run_sql(shared, database, "create table if not exists fraud.probe (secret text)", superuser=True)
    run_sql(shared, database, "revoke all on schema fraud from public", superuser=True)
    try:
        outcome = observed(shared, "pricing", "fraud", "postgres")
    finally:
        run_sql(shared, database, "drop schema fraud cascade", superuser=True)
    assert outcome["postgres target catalog metadata"] == LEAK, outcome
    assert outcome["postgres target schema"] == DENIED


def _filer_token(stack: Stack) -> str:
    """A read token for the filer, signed with the stack's own key (what weed's S3 gateway holds)."""
    import base64
    import hashlib
    import hmac
    import json
    import time
    import tomllib

    key = tomllib.loads((stack.folder("s3") / "security.toml").read_text())["jwt"]["filer_signing"]["read"]["key"]

    def encoded(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = encoded(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = encoded(json.dumps({"exp": int(time.time()) + 30}).encode())
    signature = encoded(hmac.new(key.encode(), header + b"." + claims, hashlib.sha256).digest())
    return (header + b"." + claims + b"." + signature).decode()


def test_seaweedfs_on_the_host_loopback_is_reported_as_a_leak(shared: Stack) -> None:
    """weed's master, volume and filer ports on the shared loopback: the master answers anyone.

    The filer and volume ports still want a token signed with the stack's key (security.toml):
    with one, the filer serves the object (the control), without one it refuses.
    """
    import requests

    shared.down(("s3",))
    shared.s3_private_network = False
    try:
        shared.up(("s3",))
        outcome = observed(shared, "pricing", "fraud", "side-doors")
        key = "fraud/side-door-control.txt"
        fraud = get_tenant(shared, "fraud")
        s3 = shared.s3_client(fraud.access_key, fraud.secret_key)
        version = s3.put_object(Bucket="models", Key=key, Body=b"fraud's bytes").get("VersionId")
        url = f"http://127.0.0.1:{shared.ports.weed(4)}{filer_path('models', key, version)}"
        signed = requests.get(url, headers={"Authorization": f"Bearer {_filer_token(shared)}"}, timeout=5)
        unsigned = requests.get(url, timeout=5)
    finally:
        shared.down(("s3",))
        shared.s3_private_network = True
        shared.up(("s3",))
    assert outcome["seaweedfs master admin API (side door)"] == LEAK, outcome
    assert (signed.status_code, signed.content) == (200, b"fraud's bytes")
    assert unsigned.status_code == 401
    assert outcome["seaweedfs filer GET target object (side door)"] == DENIED
    assert set(observed(shared, "pricing", "fraud", "side-doors").values()) == {DENIED}
