"""The stack's PostgreSQL: what `mlops dev up` starts first, and the one way code here talks SQL to it.

Debian's PostgreSQL 15 binaries, run as the service user when we are root, on the stack's port on
127.0.0.1 with scram-sha-256 over TCP (tenants must not borrow each other's roles) and a Unix socket
private to the stack that trusts whoever reaches it (setup runs through it). Once it answers, the
platform's role and databases (DATABASES, owned by DB_USER) are created if missing. `run_sql` is
the one client the launchers, `devstack.tenants`, `mlops isolation-check` and the tests share.
Where `mlops dev backup` enabled it, it archives its WAL to the stack's S3 (devstack.backup).
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from devstack import backup, process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["DATABASES", "DB_USER", "pg_bin", "provision_databases", "run_sql", "start_postgres"]

DATABASES = ("mlflow", "mlflow_auth", "feast", "offline")
DB_USER = "mlops"


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (initdb, postgres): on PATH, or Debian's versioned folder."""
    return process.find_binary(name, "/usr/lib/postgresql/*/bin")


def run_sql(stack: Stack, database: str, statement: str, *, superuser: bool = False, port: int | None = None) -> Any:
    """Run one statement, autocommit; its rows, or [] for a statement that returns none.

    `superuser`: as `postgres` through the stack's private socket; otherwise as DB_USER over TCP on
    `port` (default PostgreSQL's own; the PgBouncer port to go through the pooler).
    """
    import psycopg

    user = "postgres" if superuser else DB_USER
    with psycopg.connect(
        host=str(stack.folder("postgres") / "sockets") if superuser else "127.0.0.1",
        port=port or stack.ports.postgres,
        dbname=database,
        user=user,
        password=stack.db_password,
        autocommit=True,
        connect_timeout=3,
    ) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _initdb(stack: Stack) -> None:
    """A new cluster in <root>/postgres/data, owned by the service user; once per stack."""
    data = stack.folder("postgres") / "data"
    data.mkdir(parents=True, exist_ok=True)
    process.give_to_service_user(stack.folder("postgres"))
    init = subprocess.run(
        process.as_service_user(
            [
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                # Over TCP every role proves its password (tenants must not borrow each
                # other's roles); the local socket, private to this stack, is for setup.
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise ComponentError(
            "dev",
            f"initdb failed in {data}:\n{init.stderr.strip()[-1500:]}",
            f"every folder above {stack.root} must be readable by the '{process.SERVICE_USER}' user"
            " when running as root (chmod o+x), or pick another --dir",
        )


def start_postgres(stack: Stack) -> float:
    """Start PostgreSQL (initdb on first use), wait until it answers, provision; seconds to ready."""
    data = stack.folder("postgres") / "data"
    sockets = stack.folder("postgres") / "sockets"
    sockets.mkdir(parents=True, exist_ok=True)
    # The socket trusts whoever reaches it (setup runs through it): only the service user may.
    sockets.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        _initdb(stack)
    process.give_to_service_user(stack.folder("postgres"))
    stack.log("postgres").touch()
    process.give_to_service_user(stack.log("postgres"))
    argv = process.as_service_user(
        [
            pg_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(stack.ports.postgres),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            f"max_connections={stack.max_connections}",
            # WAL archiving to the stack's S3 with barman-cloud, once `mlops dev backup` enabled it.
            *backup.server_settings(stack),
        ]
    )
    pid = process.start(argv, stack.log("postgres"), stack.pid_file("postgres"))
    seconds = process.wait_until(
        lambda: run_sql(stack, "postgres", "select 1", superuser=True) is not None,
        what="PostgreSQL",
        log=stack.log("postgres"),
        pid=pid,
        timeout=60,
    )
    provision_databases(stack)
    return seconds


def provision_databases(stack: Stack) -> None:
    """The role and databases the platform expects, created once (idempotent)."""
    if not run_sql(stack, "postgres", f"select 1 from pg_roles where rolname = '{DB_USER}'", superuser=True):
        run_sql(stack, "postgres", f"create role {DB_USER} login password '{stack.db_password}'", superuser=True)
    for database in DATABASES:
        if not run_sql(stack, "postgres", f"select 1 from pg_database where datname = '{database}'", superuser=True):
            run_sql(stack, "postgres", f"create database {database} owner {DB_USER}", superuser=True)
