"""The cluster's tenant-databases Job, as rendered (pipelines.tenant_stores.tenant_databases), on a real PostgreSQL.

No Kubernetes here: the test creates the roles CloudNativePG would (postgres_roles), runs the
Job's psql command on the rendered SQL as the superuser, twice (a retried Job), and then
connects as each tenant the way its pipelines would.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from components.platform.readonly import reader_name
from devstack import process
from devstack.postgres import run_sql
from devstack.stack import PORT_SPAN, Ports, Stack
from pipelines.cluster import postgres_roles
from pipelines.tenant_stores import tenant_databases

pytestmark = pytest.mark.integration
TENANTS = ["fraud", "pricing"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="mlops-cluster-databases-"))
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    stack.up(("postgres",))
    try:
        for role in postgres_roles(TENANTS)["spec"]["managed"]["roles"]:  # what CloudNativePG makes
            limit = role.get("connectionLimit", -1)
            statement = f"create role {role['name']} login password 'pw-{role['name']}' connection limit {limit}"
            run_sql(stack, "postgres", statement, superuser=True)
        run_sql(stack, "postgres", "create database feast_registry", superuser=True)  # the Cluster's postInitSQL
        run_sql(stack, "postgres", "create role mlflow login password 'pw-mlflow'", superuser=True)  # its initdb owner
        run_sql(stack, "postgres", "alter database mlflow owner to mlflow", superuser=True)
        yield stack
    finally:
        stack.down()


def run_the_job(stack: Stack) -> subprocess.CompletedProcess[str]:
    configmap, job = tenant_databases(TENANTS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["psql", "--no-psqlrc"]
    sql = Path(stack.root) / "tenants.sql"
    sql.write_text(configmap["data"]["tenants.sql"])
    environment = {
        "PATH": os.environ["PATH"],
        "PGHOST": str(stack.folder("postgres") / "sockets"),
        "PGPORT": str(stack.ports.postgres),
        "PGDATABASE": "postgres",
        "PGUSER": "postgres",
    }
    return subprocess.run(
        ["psql", "--no-psqlrc", f"--file={sql}"], env=environment, capture_output=True, text=True, timeout=60
    )


def connect(stack: Stack, role: str, database: str) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=stack.ports.postgres, user=role, password=f"pw-{role}", dbname=database
    )


def test_each_tenant_gets_its_registry_database_and_only_its_own(postgres: Stack) -> None:
    for attempt in (1, 2):  # a retried Job changes nothing
        result = run_the_job(postgres)
        assert result.returncode == 0, (attempt, result.stderr)
    owners = dict(
        run_sql(
            postgres,
            "postgres",
            "select datname, pg_get_userbyid(datdba) from pg_database where datname like 'feast_%'",
            superuser=True,
        )
    )
    assert owners == {"feast_fraud": "fraud", "feast_pricing": "pricing", "feast_registry": "postgres"}
    with connect(postgres, "fraud", "feast_fraud") as connection:  # the positive control
        connection.execute("create table registry_probe (id int)")
    with connect(postgres, "feast", "feast_registry"):  # the platform's own role keeps its database
        pass
    for role, database in (("pricing", "feast_fraud"), ("fraud", "feast_registry"), ("fraud", "mlflow")):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(postgres, role, database)


def test_the_transformers_reader_role_selects_the_registry_and_writes_nothing(postgres: Stack) -> None:
    """issue 29: the transformer logged in as the role that owns the tenant's Feast registry. Its
    reader role SELECTs the registry's tables, also those the tenant's pipelines make after the
    Job ran (default privileges), first (positive control); INSERT, UPDATE, DELETE, DROP and
    CREATE are refused, and so is another tenant's registry; the owner's own write, the control
    broken on purpose, goes through, so the refusals are the reader's grants."""
    assert run_the_job(postgres).returncode == 0
    reader = reader_name("fraud")
    with connect(postgres, "fraud", "feast_fraud") as owner:  # as Feast's registry makes its tables
        owner.execute("create table if not exists feature_services (name text primary key, proto bytea)")
        owner.execute("insert into feature_services values ('fraud_model_v1', '\\x01') on conflict do nothing")
    with connect(postgres, reader, "feast_fraud") as connection:
        rows = connection.execute("select name from feature_services").fetchall()
        assert rows == [("fraud_model_v1",)]
    for statement in ("insert into feature_services values ('forged', '\\x02')",
                      "update feature_services set proto = '\\x03'", "delete from feature_services",
                      "drop table feature_services", "create table planted (id int)"):  # fmt: skip
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege)
        with connect(postgres, reader, "feast_fraud") as connection, refused:
            connection.execute(statement)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect(postgres, reader, "feast_pricing")
    with connect(postgres, "fraud", "feast_fraud") as owner:
        owner.execute("update feature_services set proto = '\\x04'")
        assert owner.execute("select count(*) from feature_services where proto = '\\x04'").fetchone() == (1,)


def test_a_failed_statement_fails_the_job(postgres: Stack) -> None:
    """ON_ERROR_STOP: a missing role must fail the Job (and Kubernetes retries it), not pass silently."""
    run_sql(postgres, "postgres", "alter role pricing rename to pricing_gone", superuser=True)
    try:
        run_sql(postgres, "postgres", "drop database if exists feast_pricing", superuser=True)
        result = run_the_job(postgres)
    finally:
        run_sql(postgres, "postgres", "alter role pricing_gone rename to pricing", superuser=True)
    assert result.returncode != 0 and 'role "pricing" does not exist' in result.stderr
