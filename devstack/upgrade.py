"""The registry's MLflow schema upgraded the rehearsed way: backed up, migrated, verified, restored on failure.

Issue 34 item 6. A new MLflow pin may carry alembic revisions for the tracking database. MLflow
applies them when a server or a client first opens the database, with no backup; `mlops dev
upgrade` (and `upgrade_registry` here) does it deliberately, on the stack's PostgreSQL:

1. the MLflow server is stopped (no writer during the migration), then the schema's revision and the
   registry's contents are read (`registry_contents`: registered models, versions, aliases, the
   serving-history tags, the lineage tags and dataset inputs; each a count and a digest of its rows);
2. the mlflow database alone dumped (`pg_dump -Fc`: what a failure restores), then the disaster copy:
   a base backup with barman-cloud (devstack/backup.py, WAL archiving turned on if it was not) and a
   named restore point `mlops-upgrade-<UTC>` whose WAL is archived before anything is changed;
3. `mlflow db upgrade <url>` (the pinned MLflow's own command; the password in PGPASSWORD, never on
   argv), straight to PostgreSQL, not through PgBouncer;
4. the contents read again: every count and digest equal, the revision MLflow's head;
5. on any failure in 3 or 4 (an exception or Ctrl-C included) the mlflow database is set aside as
   `mlflow_failed_<UTC>` and the dump restored in its place (`restore_database`): only the registry
   goes back; what other writers put in the server's other databases meanwhile (a Feast registry, a
   tenant's) stays. The error says what failed and what to do: exit 75 when the database did not
   answer or the run was interrupted (run it again), 2 otherwise (a retry fails the same way).

A schema newer than the pin (the pin rolled back) is refused, not migrated (`refuse_newer_schema`).
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
from typing import TYPE_CHECKING, Any, NoReturn

from components.errors import ComponentError, TransientError
from devstack import backup, process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = [
    "CONTENTS",
    "Contents",
    "Upgraded",
    "dump_database",
    "head_revision",
    "refuse_newer_schema",
    "registry_contents",
    "restore_database",
    "revisions_between",
    "schema_revision",
    "upgrade_registry",
]

STEP = "dev upgrade"
DATABASE = "mlflow"
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


def refuse_newer_schema(stack: Stack, current: str, head: str, step: str = STEP) -> None:
    """Refuse a revision the pinned MLflow's scripts do not lead to its head: a newer MLflow wrote it
    (the pin was rolled back), and neither migrating nor starting the older MLflow on it is sound."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    scripts = ScriptDirectory.from_config(utils._get_alembic_config(db_url=""))
    if current in {script.revision for script in scripts.walk_revisions(base="base", head=head)}:
        return
    raise ComponentError(
        step,
        f"the registry's schema is at revision {current}, newer than the pinned MLflow's head {head}"
        " (its migrations do not know it): a newer MLflow migrated it, and this pin cannot run on it",
        "run the newer MLflow pin the registry was migrated by; or, to go back to this pin, restore the registry from"
        f" before that upgrade (mlops dev restore --dir {stack.root} --to <before it>; docs/recovery.md, Upgrades)",
    )


def _pg(stack: Stack, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pg_dump or pg_restore as the superuser over the stack's private socket (no password needed)."""
    from devstack.postgres import pg_bin

    socket = str(stack.folder("postgres") / "sockets")
    argv = [pg_bin(name), "--host", socket, "--port", str(stack.ports.postgres), "--username", "postgres", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=MIGRATION_TIMEOUT, check=False)


def dump_database(stack: Stack, path: Path) -> None:
    """The mlflow database alone, as `pg_dump -Fc` writes it (its owner, grants and settings too), to
    `path`, readable by its owner only: what a failed upgrade restores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    dumped = _pg(stack, "pg_dump", "--format", "custom", "--create", "--file", str(path), DATABASE)
    if dumped.returncode != 0:
        path.unlink(missing_ok=True)
        raise TransientError(
            STEP,
            f"pg_dump of the {DATABASE} database failed (exit {dumped.returncode}), nothing changed:\n"
            + dumped.stderr.strip()[-1500:],
            "check PostgreSQL (mlops dev status) and run mlops dev upgrade again",
        )


def restore_database(stack: Stack, dump: Path, set_aside: str) -> None:
    """Put the mlflow database back from `dump`, nothing else: the current one is renamed `set_aside`
    (new connections refused first, then every session in it ended: PgBouncer's pooled ones too) and
    the dump restored as `mlflow` with `pg_restore --create` (owner, grants and settings from the dump)."""
    from devstack.postgres import run_sql

    def sql(statement: str) -> Any:
        return run_sql(stack, "postgres", statement, superuser=True)

    sql(f"alter database {DATABASE} allow_connections false")
    try:
        deadline = time.monotonic() + 30
        while sql(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            f" where datname = '{DATABASE}' and pid <> pg_backend_pid()"
        ):
            if time.monotonic() > deadline:
                raise TransientError(STEP, f"sessions in the {DATABASE} database did not end", "run it again")
            time.sleep(0.2)
        sql(f"alter database {DATABASE} rename to {set_aside}")
    finally:
        sql(f"alter database {set_aside if _exists(stack, set_aside) else DATABASE} allow_connections true")
    restored = _pg(stack, "pg_restore", "--create", "--exit-on-error", "--dbname", "postgres", str(dump))
    if restored.returncode != 0:
        raise ComponentError(
            STEP,
            f"pg_restore of {dump} failed (exit {restored.returncode}):\n" + restored.stderr.strip()[-1500:],
            f"the failed attempt's database is {set_aside}; drop any half-restored {DATABASE} database and run"
            f" pg_restore --create -d postgres {dump} again",
        )


def _exists(stack: Stack, database: str) -> bool:
    from devstack.postgres import run_sql

    return bool(run_sql(stack, "postgres", f"select 1 from pg_database where datname = '{database}'", superuser=True))


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
    if start == head:
        return Upgraded(start, head, registry_contents(stack))
    refuse_newer_schema(stack, start, head)
    server_was_running = stack.running("mlflow")
    if server_was_running:  # no writer while the contents are read and the schema changes
        process.stop(stack.pid_file("mlflow"), signal.SIGTERM, 20.0)
    before = registry_contents(stack)  # after the stop: nothing can write between this and the migration
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dt%H%M%S}"
    dump = stack.folder("upgrades") / f"mlflow-{stamp}.dump"
    dump_database(stack, dump)
    taken = backup.base_backup(stack)  # the disaster copy: the whole server, to the restore point
    point = f"mlops-upgrade-{stamp}"
    point_time = backup.create_restore_point(stack, point)
    attempt = _Attempt(stack, start, head, before, dump, point, point_time, taken.backup_id)
    after = attempt.migrate_and_verify()
    if server_was_running:
        from devstack.mlflow_server import start_mlflow

        start_mlflow(stack)
    return Upgraded(
        start, head, after, taken.backup_id, point, time.monotonic() - started, revisions_between(start, head)
    )


@dataclass(frozen=True)
class _Attempt:
    """One migration and what a failure of it is restored from and reported with."""

    stack: Stack
    start: str
    head: str
    before: dict[str, Contents]
    dump: Path
    point: str
    point_time: dt.datetime
    backup_id: str

    def migrate_and_verify(self) -> dict[str, Contents]:
        """Migrate, read the registry again, compare; any failure here (an exception, Ctrl-C) restores."""
        output, reached, after = "", "", {}
        try:
            migration = _migrate(self.stack)
            output = f"{migration.stdout}\n{migration.stderr}"
            if migration.returncode == 0:
                after, reached = registry_contents(self.stack), schema_revision(self.stack)
        except BaseException as error:  # an unreadable migrated registry, Ctrl-C: restored all the same
            interrupted = not isinstance(error, Exception)
            what = "was interrupted" if interrupted else "failed"
            self.restore_and_raise(f"the upgrade {what} ({type(error).__name__}: {error})", output, interrupted, error)
        if migration.returncode != 0:
            failed = _failure(output, self.start, self.head)
            self.restore_and_raise(f"mlflow db upgrade (exit {migration.returncode}) failed{failed}", output)
        if reached != self.head or _differences(self.before, after):
            wrong = _differences(self.before, after) + [f"revision {reached}, not MLflow's head {self.head}"] * (
                reached != self.head
            )
            self.restore_and_raise("the migrated registry is not the one backed up: " + "; ".join(wrong), output)
        return after

    def restore_and_raise(
        self, problem: str, output: str, interrupted: bool = False, cause: BaseException | None = None
    ) -> NoReturn:
        """Put the mlflow database back from the dump, check it is the one before, raise the error."""
        stack, aside = self.stack, f"mlflow_failed_{dt.datetime.now(dt.UTC):%Y%m%dt%H%M%S}"
        by_hand = (
            f"or, the disaster copy, restore the whole server to the restore point (also rolls back other"
            f" databases' writes since): mlops dev restore --dir {stack.root} --to {self.point_time.isoformat()}"
        )
        restoring = time.monotonic()
        try:
            restore_database(stack, self.dump, aside)
        except ComponentError as error:
            raise ComponentError(
                STEP,
                f"{problem}\nand restoring the {DATABASE} database from {self.dump} failed too:\n{error.problem}",
                f"{error.fix}; {by_hand}; read docs/recovery.md, Upgrades",
            ) from error
        except Exception as error:
            raise TransientError(
                STEP,
                f"{problem}\nand restoring the {DATABASE} database from {self.dump} failed too: {error}",
                f"check PostgreSQL (mlops dev status), then pg_restore --create -d postgres {self.dump}; {by_hand}",
            ) from error
        seconds = time.monotonic() - restoring
        now, contents = schema_revision(stack), registry_contents(stack)
        if now != self.start or contents != self.before:
            raise ComponentError(
                STEP,
                f"{problem}\nthe {DATABASE} database restored from {self.dump} has revision {now or 'none'} and "
                + "; ".join(_differences(self.before, contents) or ["the same contents"]),
                f"restore it by hand: pg_restore --create -d postgres {self.dump} (after renaming the {DATABASE}"
                f" database); {by_hand}",
            )
        said = (
            f"{problem}\nthe {DATABASE} database restored from its dump taken before the migration ({self.dump},"
            f" {seconds:.1f} s): schema revision {self.start} and the registry's contents as before; the server's"
            f" other databases untouched. The failed attempt's database is kept as {aside} for a post-mortem"
            f" (drop database {aside} when done); the disaster copy: base backup {self.backup_id}, restore point"
            f" {self.point}. The MLflow server is stopped, and starting it would run the same migration"
        )
        if interrupted or _UNREACHABLE.search(f"{output}\n{cause or ''}"):
            again = "run mlops dev upgrade again" + (
                "" if interrupted else " once PostgreSQL answers (mlops dev status)"
            )
            raise TransientError(STEP, said, again) from cause
        raise ComponentError(
            STEP,
            said,
            "fix the cause the error names (an object in the way: drop or rename it after checking what it is),"
            " then run mlops dev upgrade again; or stay on the previous MLflow pin (docs/recovery.md, Upgrades)",
        ) from cause
