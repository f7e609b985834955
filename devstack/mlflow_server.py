"""The stack's MLflow tracking server: `mlflow server` on PostgreSQL through PgBouncer, artifacts in S3.

As in manifests/base/mlflow: the backend store through PgBouncer (psycopg2, the password only in
PGPASSWORD, never on argv), the schema migrated once straight against PostgreSQL before the server
starts, and direct artifact mode (`--no-serve-artifacts`): clients write artifacts to S3 with their
own keys and the server holds no S3 key at all, so it cannot be a confused deputy between tenants.
With `Stack.mlflow_auth` it runs the basic-auth app (components.platform.tracking_auth), its
users and permissions in the mlflow_auth database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from components.errors import ComponentError
from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["MLFLOW_ADMIN", "NO_AWS_CREDENTIALS", "schema_at_head", "start_mlflow"]

MLFLOW_ADMIN = "admin"

NO_AWS_CREDENTIALS: dict[str, str | None] = {
    # None: removed from the inherited environment; botocore then finds no file and no metadata
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _environment(stack: Stack) -> dict[str, str | None]:
    """The server's environment over the inherited one (None: removed)."""
    return {
        "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
        # No S3 key at all: in direct mode (--no-serve-artifacts) clients move artifacts with
        # their own keys. A key here would make the server a confused deputy: a tenant's own
        # model version whose source points at another tenant's prefix, downloaded through
        # /model-versions/get-artifact, streamed that tenant's object (mlops isolation-check).
        **NO_AWS_CREDENTIALS,
        **(
            {"AWS_ACCESS_KEY_ID": stack.access_key, "AWS_SECRET_ACCESS_KEY": stack.secret_key}
            if stack.mlflow_server_s3_key
            else {}
        ),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_METADATA_SERVICE_TIMEOUT": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Job workers (huey) are for server-side jobs this platform does not use; each one
        # costs a process and a database connection.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def schema_at_head(stack: Stack) -> bool:
    """Whether the tracking database already has every table and its alembic revision is MLflow's
    head: what the migration would check before doing nothing (SqlAlchemyStore: every table
    there, then the revision verified), read the same way, in this process and without a write."""
    import sqlalchemy
    from mlflow.store.db import utils
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(stack.database_url("mlflow", through_pgbouncer=False), poolclass=NullPool)
    try:
        if not utils._all_tables_exist(engine):
            return False
        current = utils._get_schema_version(engine)  # alembic's MigrationContext, alembic_version's row
    except sqlalchemy.exc.SQLAlchemyError:
        return False  # not readable: the migration runs, and says why it fails
    finally:
        engine.dispose()
    return bool(current) and current == utils._get_latest_schema_revision()  # the one head of MLflow's scripts


def _refuse_an_older_schema(stack: Stack) -> None:
    """A registry an older MLflow wrote is migrated deliberately, after a backup: `mlops dev upgrade`.
    MLflow's store would migrate it by itself, unasked and with no backup, whenever the new
    revisions add tables (SqlAlchemyStore: not every table there, so every revision runs). A registry
    a newer MLflow wrote (the pin rolled back) is refused as newer: no upgrade can help it."""
    from devstack.upgrade import head_revision, refuse_newer_schema, schema_revision

    current, head = schema_revision(stack), head_revision()
    if not current or current == head:
        return
    refuse_newer_schema(stack, current, head, step="dev")
    raise ComponentError(
        "dev",
        f"the registry's schema is at revision {current}, older than the pinned MLflow's head {head}:"
        " starting MLflow would migrate it with no backup",
        f"mlops dev upgrade --dir {stack.root} (backs it up, migrates, verifies, restores on failure;"
        " docs/recovery.md, Upgrades)",
    )


def _migrate(stack: Stack, env: dict[str, str | None]) -> None:
    """Schema creation and migrations, once, directly against PostgreSQL: DDL in a
    transaction-pooled connection is fragile, and the server should not race them. A database
    already at MLflow's head (a restart) is left alone: the migration would only verify it."""
    if schema_at_head(stack):
        return
    _refuse_an_older_schema(stack)
    migrate = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as S;"
            " S(os.environ['MLOPS_MIGRATE_DATABASE_URL'], 's3://mlflow-artifacts')",
        ],
        capture_output=True,
        text=True,
        # issue 29: the URL holds the password, so it travels in the environment, never on argv.
        env=process.merged_environment(
            {**env, "MLOPS_MIGRATE_DATABASE_URL": stack.database_url("mlflow", through_pgbouncer=False)}
        ),
        check=False,
    )
    if migrate.returncode != 0:
        raise ComponentError(
            "dev", f"MLflow schema migration failed:\n{migrate.stderr[-2000:]}", "check PostgreSQL's log"
        )


def _argv(stack: Stack) -> list[str]:
    return [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        # psycopg2, not psycopg 3: psycopg 3 prepares repeated statements on the server,
        # and PgBouncer 1.18 in transaction pooling sends the next transaction to another
        # server connection ("prepared statement _pg3_0 already exists").
        # issue 29: no password on the command line (every local user reads /proc/*/cmdline):
        # libpq takes it from PGPASSWORD, set below for both databases (the same role).
        stack.database_url(
            "mlflow", driver="postgresql+psycopg2", through_pgbouncer=stack.mlflow_through_pgbouncer
        ).replace(f":{stack.db_password}@", "@"),
        "--default-artifact-root",
        "s3://mlflow-artifacts/",
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(stack.ports.mlflow),
        "--workers",
        str(stack.mlflow_workers),
    ]


def _basic_auth(stack: Stack, env: dict[str, str | None], instance: str = "mlflow") -> list[str]:
    """Write the basic-auth app's config and set its environment; the arguments that select it."""
    from components.platform.tracking_auth import auth_config

    # The cluster's file (pipelines.cluster.mlflow_auth_config): no password in it (libpq
    # reads PGPASSWORD), the admin from the environment.
    database = stack.database_url("mlflow_auth", driver="postgresql+psycopg2").replace(f":{stack.db_password}@", "@")
    config = stack.folder(instance) / "basic_auth.ini"
    process.write_private(
        config,
        auth_config(
            database, default_permission=stack.mlflow_default_permission, tenant_names=stack.mlflow_tenant_names
        ),
    )
    env["MLFLOW_AUTH_ADMIN_USERNAME"] = MLFLOW_ADMIN
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = stack.admin_password
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = stack.admin_password + "-csrf"
    return ["--app-name", "basic-auth"]


def start_mlflow(stack: Stack, instance: str = "mlflow") -> float:
    """Migrate the schema, start the server, wait for /health; seconds to ready (migration included).
    `instance` names its folder, log and pid file: another name runs a second server on the same
    databases, on the port `stack.ports.mlflow` says (the isolation tests' server as MLflow ships)."""
    import urllib.request

    env = _environment(stack)
    started = time.monotonic()
    _migrate(stack, env)
    argv = _argv(stack)
    env["PGPASSWORD"] = stack.db_password
    if stack.mlflow_auth:
        argv += _basic_auth(stack, env, instance)
    # A server stopped a moment ago may still hold its port while its workers exit.
    deadline = time.monotonic() + 30
    while not process.port_free(stack.ports.mlflow) and time.monotonic() < deadline:
        time.sleep(0.2)
    pid = process.start(argv, stack.log(instance), stack.pid_file(instance), env=env)

    def healthy() -> bool:
        with urllib.request.urlopen(f"{stack.tracking_uri}/health", timeout=2) as response:
            return bool(response.status == 200)

    process.wait_until(healthy, what="MLflow server", log=stack.log(instance), pid=pid, timeout=120)
    return time.monotonic() - started
