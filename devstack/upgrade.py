"""The registry's MLflow schema upgraded the rehearsed way: backed up, migrated, verified, restored on failure.

Issue 34 item 6. A new MLflow pin may carry alembic revisions for the tracking database. MLflow
applies them when a server or a client first opens the database, with no backup; `mlops dev
upgrade` (and `upgrade_registry` here) does it deliberately, on the stack's PostgreSQL:

1. the MLflow server is stopped (no writer during the migration); the schema's revision and the
   registry's contents are read (`registry_contents`: registered models, versions, aliases, the
   serving-history tags, the lineage tags and dataset inputs; each a count and a digest of its rows);
2. a base backup with barman-cloud (devstack/backup.py, WAL archiving turned on if it was not), then
   a named restore point `mlops-upgrade-<UTC>` whose WAL is archived before anything is changed;
3. `mlflow db upgrade <url>` (the pinned MLflow's own command; the password in PGPASSWORD, never on
   argv), straight to PostgreSQL, not through PgBouncer;
4. the contents read again: every count and digest equal, the revision MLflow's head;
5. on any failure in 3 or 4 the data directory is restored to the restore point (the state the
   migration started from, nothing of it left) and the error says what failed and what to do:
   exit 75 when the database did not answer (run it again), 2 otherwise (a retry fails the same way).

MLflow runs all of its revisions in one transaction and PostgreSQL's DDL is transactional, so a
failed revision is usually rolled back by PostgreSQL already; the restore does not rely on that
(a revision may commit on its own, an operator may have run part of one by hand) and the check
after it proves the database is the one before. tests/integration/test_registry_upgrade.py
rehearses it from a registry the previous pin wrote; docs/recovery.md, "Upgrades", is the procedure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from components.errors import ComponentError, TransientError
from devstack import backup, process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = [
    "CONTENTS",
    "Contents",
    "Upgraded",
    "head_revision",
    "registry_contents",
    "revisions_between",
    "schema_revision",
    "upgrade_registry",
]

STEP = "dev upgrade"
MIGRATION_TIMEOUT = 1800.0
CONTENTS = {
    # what the platform proves with the registry, read as rows the schema has had since MLflow 2
    "registered models": "select name from registered_models",
    "model versions": "select name, version, source, run_id, status from model_versions",
    "aliases": "select name, alias, version from registered_model_aliases",
    "serving-history entries": "select name, key, value from registered_model_tags where key like 'mlops.history.%'",
    "version tags": "select name, version, key, value from model_version_tags",
    "lineage tags": "select run_uuid, key, value from tags where key like 'mlops.lineage.%'",
    "lineage datasets": "select d.name, d.digest, i.destination_id from inputs i"
    " join datasets d on d.dataset_uuid = i.source_id where i.source_type = 'DATASET'",
}
"""Each part of the registry the upgrade must keep: its name and the query its rows are read with."""
_UNREACHABLE = re.compile(
    r"could not connect|connection refused|connection timed out|server closed the connection|"
    r"connection to server .* failed|the database system is (starting up|shutting down)|too many clients",
    re.IGNORECASE,
)
_REVISION_FILE = re.compile(r"db_migrations/versions/([0-9a-f]+)_\w+\.py")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*$", re.MULTILINE)


@dataclass(frozen=True)
class Contents:
    """A part of the registry: how many rows and the sha256 of them, sorted."""

    count: int
    digest: str


@dataclass(frozen=True)
class Upgraded:
    """A finished upgrade (or none needed: `from_revision == to_revision`, no backup)."""

    from_revision: str
    to_revision: str
    contents: dict[str, Contents]
    backup_id: str = ""
    restore_point: str = ""
    seconds: float = 0.0
    revisions: list[str] = field(default_factory=list)


def schema_revision(stack: Stack) -> str:
    """The tracking database's alembic revision ('' for a database MLflow never opened)."""
    from devstack.postgres import run_sql

    rows = run_sql(stack, "mlflow", "select to_regclass('public.alembic_version') is not null", superuser=True)
    if not rows[0][0]:
        return ""
    found = run_sql(stack, "mlflow", "select version_num from alembic_version", superuser=True)
    return str(found[0][0]) if found else ""


def registry_contents(stack: Stack) -> dict[str, Contents]:
    """Every part of CONTENTS as its count and digest, read as the superuser over the private socket."""
    from devstack.postgres import run_sql

    contents = {}
    for name, query in CONTENTS.items():
        rows = sorted(repr(tuple(row)) for row in run_sql(stack, "mlflow", query, superuser=True))
        contents[name] = Contents(len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return contents


def head_revision() -> str:
    """The pinned MLflow's head revision: what `mlflow db upgrade` migrates to."""
    from mlflow.store.db import utils

    return str(utils._get_latest_schema_revision())


def revisions_between(start: str, head: str) -> list[str]:
    """The revisions `mlflow db upgrade` applies from `start` to `head`, oldest first, as `down -> up`
    (read from the pinned MLflow's own alembic scripts)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    scripts = ScriptDirectory.from_config(utils._get_alembic_config(db_url=""))
    return [
        f"{step.down_revision} -> {step.revision}" for step in reversed(list(scripts.iterate_revisions(head, start)))
    ]


def _migrate(stack: Stack) -> subprocess.CompletedProcess[str]:
    url = stack.database_url("mlflow", through_pgbouncer=False).replace(f":{stack.db_password}@", "@")
    argv = [str(Path(sys.executable).parent / "mlflow"), "db", "upgrade", url]
    environment = {"PGPASSWORD": stack.db_password, "MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=MIGRATION_TIMEOUT,
            check=False,
            env=process.merged_environment(environment),
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stderr or b"").decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr
        return subprocess.CompletedProcess(argv, 124, "", f"{output or ''}\ntimed out after {MIGRATION_TIMEOUT:.0f} s")


def _differences(before: dict[str, Contents], after: dict[str, Contents]) -> list[str]:
    return [
        f"{name}: {before[name].count} before, {after[name].count} after"
        + (" (same count, other rows)" if before[name].count == after[name].count else "")
        for name in CONTENTS
        if before[name] != after[name]
    ]


def _failure(output: str, start: str, head: str) -> str:
    """Which revision was being applied when the migration stopped (the last revision script in its
    traceback), and the error it raised, without the rest of the traceback."""
    scripts = _REVISION_FILE.findall(output)
    steps = revisions_between(start, head)
    failed = next((step for step in steps if scripts and step.endswith(f" -> {scripts[-1]}")), "")
    where = f" at revision {failed}" if failed else f" before its first revision ({steps[0] if steps else head})"
    errors = [match.start() for match in _EXCEPTION_LINE.finditer(output)]
    return where + ":\n" + (output[errors[-1] :] if errors else output).strip()[-1500:]


def upgrade_registry(stack: Stack) -> Upgraded:
    """Back up, migrate the tracking database to the pinned MLflow's head, verify; restore on failure."""
    if not stack.running("postgres"):
        raise ComponentError(
            STEP,
            f"PostgreSQL of the stack under {stack.root} is not running",
            f"start it: mlops dev up --dir {stack.root} --services postgres,s3",
        )
    started = time.monotonic()
    start, head = schema_revision(stack), head_revision()
    if not start:
        raise ComponentError(
            STEP,
            f"the mlflow database under {stack.root} has no MLflow schema: nothing to upgrade",
            f"mlops dev up --dir {stack.root} creates it at MLflow's head",
        )
    before = registry_contents(stack)
    if start == head:
        return Upgraded(start, head, before)
    server_was_running = stack.running("mlflow")
    if server_was_running:  # no writer while the schema changes
        process.stop(stack.pid_file("mlflow"), signal.SIGTERM, 20.0)
    taken = backup.base_backup(stack)
    point = f"mlops-upgrade-{dt.datetime.now(dt.UTC):%Y%m%dt%H%M%S}"
    point_time = backup.create_restore_point(stack, point)
    migration = _migrate(stack)
    output = f"{migration.stdout}\n{migration.stderr}"
    after = registry_contents(stack) if migration.returncode == 0 else {}
    reached = schema_revision(stack) if migration.returncode == 0 else ""
    problem = ""
    if migration.returncode != 0:
        problem = f"mlflow db upgrade (exit {migration.returncode}) failed{_failure(output, start, head)}"
    elif reached != head or _differences(before, after):
        problem = "the migrated registry is not the one backed up: " + "; ".join(
            _differences(before, after) + ([f"revision {reached}, not MLflow's head {head}"] * (reached != head))
        )
    if problem:
        _restore_and_raise(stack, problem, point, point_time, taken.backup_id, start, before, output)
    if server_was_running:
        from devstack.mlflow_server import start_mlflow

        start_mlflow(stack)
    return Upgraded(
        start, head, after, taken.backup_id, point, time.monotonic() - started, revisions_between(start, head)
    )


def _restore_and_raise(
    stack: Stack,
    problem: str,
    point: str,
    point_time: dt.datetime,
    backup_id: str,
    start: str,
    before: dict[str, Contents],
    output: str,
) -> None:
    """Restore the data directory to the restore point, check it is the state before, raise the error."""
    try:
        restored = backup.restore(stack, target=point_time, restore_point=point)
    except ComponentError as error:
        raise ComponentError(
            STEP,
            f"{problem}\nand the restore to restore point {point} failed too:\n{error.problem}",
            f"{error.fix}; then restore by hand: mlops dev restore --dir {stack.root} --to {point_time.isoformat()}"
            " (the state before the migration), and read docs/recovery.md, Upgrades",
        ) from error
    now, contents = schema_revision(stack), registry_contents(stack)
    if now != start or contents != before:
        raise ComponentError(
            STEP,
            f"{problem}\nthe restore to {point} left revision {now or 'none'} and "
            + "; ".join(_differences(before, contents) or ["the same contents"]),
            f"restore by hand: mlops dev restore --dir {stack.root} --to {point_time.isoformat()}",
        )
    said = (
        f"{problem}\nrestored to restore point {point} (base backup {backup_id}, {restored.seconds:.1f} s):"
        f" schema revision {start} and the registry's contents as before the migration; the MLflow server is"
        f" stopped, and starting it would run the same migration"
    )
    if _UNREACHABLE.search(output):
        raise TransientError(STEP, said, "check PostgreSQL (mlops dev status) and run mlops dev upgrade again")
    raise ComponentError(
        STEP,
        said,
        "fix the cause the error names (an object in the way: drop or rename it after checking what it is),"
        " then run mlops dev upgrade again; or stay on the previous MLflow pin (docs/recovery.md, Upgrades)",
    )
