"""`mlops dev upgrade`'s refusals and its reading of a failed migration, without services.

The upgrade itself, its restore and its verification run on real PostgreSQL in
tests/integration/test_registry_upgrade.py; here the parts that need none: a stack that is not
running is refused before anything is done, the revision path comes from MLflow's own alembic
scripts, and a failed `mlflow db upgrade` is read for the revision it stopped in, the database's
error, and whether the database did not answer (transient) or refused (permanent). The order of
the steps and the restore on any failure (an exception, Ctrl-C) are checked on stand-ins of the
services' functions; a schema newer than the pin is refused as newer, by both commands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.errors import ComponentError, TransientError
from devstack import backup, mlflow_server, process, upgrade

HEAD = "dc11669786a5"
PREVIOUS_HEAD = "b7e2c1a4d9f3"  # MLflow 3.16's (tests/integration/old_pins.py)
TRACEBACK = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/mlflow/store/db_migrations/versions/75868b020152_add_sql_trace_analytics_schema.py", line 60, in upgrade
  File "/venv/lib/python3.11/site-packages/mlflow/store/db_migrations/versions/dc11669786a5_add_job_executor_persistence_model.py", line 45, in upgrade
    op.create_table(
psycopg.errors.DuplicateTable: relation "scheduler_leases" already exists

The above exception was the direct cause of the following exception:

sqlalchemy.exc.ProgrammingError: (psycopg.errors.DuplicateTable) relation "scheduler_leases" already exists
[SQL: CREATE TABLE scheduler_leases (lease_key VARCHAR(255) NOT NULL)]
"""  # noqa: E501


def test_a_stack_that_is_not_running_is_refused_naming_the_command(tmp_path: Path) -> None:
    from mlops.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["dev", "upgrade", "--dir", str(tmp_path)])
    assert code == 2
    assert "PostgreSQL of the stack under" in err.getvalue() and "is not running" in err.getvalue()
    assert f"mlops dev up --dir {tmp_path} --services postgres,s3" in err.getvalue()
    assert not (tmp_path / "postgres").exists()  # nothing done: no archive, no backup


def test_the_revisions_applied_come_from_mlflows_scripts() -> None:
    assert upgrade.head_revision() == HEAD
    assert upgrade.revisions_between(PREVIOUS_HEAD, HEAD) == [
        f"{PREVIOUS_HEAD} -> 75868b020152",
        f"75868b020152 -> {HEAD}",
    ]
    assert upgrade.revisions_between(HEAD, HEAD) == []


def test_a_failed_migration_is_read_for_its_revision_and_error() -> None:
    said = upgrade._failure(TRACEBACK, PREVIOUS_HEAD, HEAD)
    assert said.startswith(f" at revision 75868b020152 -> {HEAD}:\n")
    assert said.splitlines()[1].startswith("sqlalchemy.exc.ProgrammingError:")  # the last error, not the traceback
    assert "op.create_table" not in said
    assert upgrade._UNREACHABLE.search(TRACEBACK) is None  # the database answered: permanent


def test_a_database_that_did_not_answer_is_transient() -> None:
    for message in (
        'connection to server at "127.0.0.1", port 15401 failed: Connection refused',
        "FATAL:  the database system is shutting down",
        "server closed the connection unexpectedly",
    ):
        assert upgrade._UNREACHABLE.search(message), message
        said = upgrade._failure(f"sqlalchemy.exc.OperationalError: {message}", PREVIOUS_HEAD, HEAD)
        assert said.startswith(f" before its first revision ({PREVIOUS_HEAD} -> 75868b020152)")


NEWER = "0123456789ab"  # a revision the pinned MLflow's scripts do not know: a newer MLflow's


@dataclass
class _Stack:
    """What upgrade_registry asks of a stack: PostgreSQL and MLflow running, folders under root."""

    root: Path
    mlflow_running: bool = True

    def running(self, service: str) -> bool:
        return service == "postgres" or (service == "mlflow" and self.mlflow_running)

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def folder(self, service: str) -> Path:
        return self.root / service


@dataclass
class _Services:
    """Stand-ins of the services' functions, recording what happened in order. While MLflow runs, a
    client writes a model version between any two reads of the registry, and the request it serves
    when stopped lands: contents read before the stop differ from those after any migration."""

    stack: _Stack
    revision: str = PREVIOUS_HEAD
    versions: int = 1
    migration: Any = None  # None: migrates; an exception: raised by it; an int: its exit code
    broken_after_migration: bool = False
    events: list[str] = field(default_factory=list)

    def contents(self, _stack: object) -> dict[str, upgrade.Contents]:
        if self.stack.mlflow_running:
            self.versions += 1
        if self.broken_after_migration and self.revision == HEAD:
            raise RuntimeError('column "source" does not exist')
        self.events.append(f"read contents ({self.versions} versions)")
        return {name: upgrade.Contents(self.versions, f"{self.versions}") for name in upgrade.CONTENTS}

    def migrate(self, _stack: object) -> Any:
        import subprocess

        self.events.append("migrate")
        if isinstance(self.migration, BaseException):
            self.revision = "75868b020152"  # halfway
            raise self.migration
        if isinstance(self.migration, int):
            return subprocess.CompletedProcess([], self.migration, "", TRACEBACK)
        self.revision = HEAD
        return subprocess.CompletedProcess([], 0, "", "")

    def stop(self, pid_file: Path, *_: object) -> bool:
        self.events.append(f"stop {pid_file.stem}")
        self.versions += 1  # the request it was serving finishes before it exits
        self.stack.mlflow_running = False
        return True

    def restore_database(self, _stack: object, dump: Path, set_aside: str) -> None:
        self.events.append(f"restore {dump.name[:9]} setting aside {set_aside[:14]}")
        self.revision = PREVIOUS_HEAD


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Services:
    fake = _Services(_Stack(tmp_path))
    monkeypatch.setattr(upgrade, "schema_revision", lambda _stack: fake.revision)
    monkeypatch.setattr(upgrade, "registry_contents", fake.contents)
    monkeypatch.setattr(upgrade, "_migrate", fake.migrate)
    monkeypatch.setattr(upgrade, "restore_database", fake.restore_database)
    monkeypatch.setattr(process, "stop", fake.stop)
    monkeypatch.setattr(upgrade, "dump_database", lambda _stack, path: fake.events.append(f"dump {path.parent.name}"))
    monkeypatch.setattr(
        backup,
        "base_backup",
        lambda _stack: fake.events.append("base backup") or backup.Backup("b1", dt.datetime.now(dt.UTC), 0.1),
    )
    monkeypatch.setattr(
        backup,
        "create_restore_point",
        lambda _stack, name: fake.events.append(f"restore point {name[:14]}") or dt.datetime.now(dt.UTC),
    )
    monkeypatch.setattr(mlflow_server, "start_mlflow", lambda _stack: fake.events.append("start mlflow") or 1.0)
    return fake


def test_mlflow_is_stopped_before_the_registry_is_read_so_a_last_write_does_not_fail_a_good_migration(
    services: _Services,
) -> None:
    done = upgrade.upgrade_registry(services.stack)  # type: ignore[arg-type]
    assert services.events == [
        "stop mlflow",
        "read contents (2 versions)",  # the write made while it ran is in what is compared
        "dump upgrades",
        "base backup",
        "restore point mlops-upgrade-",
        "migrate",
        "read contents (2 versions)",
        "start mlflow",
    ]
    assert (done.from_revision, done.to_revision, done.restore_point[:14]) == (PREVIOUS_HEAD, HEAD, "mlops-upgrade-")


@pytest.mark.parametrize(
    ("failure", "kind", "said"),
    [
        (KeyboardInterrupt(), TransientError, "the upgrade was interrupted (KeyboardInterrupt: )"),
        (1, ComponentError, "mlflow db upgrade (exit 1) failed at revision 75868b020152 -> dc11669786a5"),
        ("unreadable", ComponentError, 'the upgrade failed (RuntimeError: column "source" does not exist)'),
    ],
)
def test_any_failure_of_the_migration_or_its_check_restores_the_mlflow_database(
    services: _Services, failure: Any, kind: type[ComponentError], said: str
) -> None:
    services.migration = None if failure == "unreadable" else failure
    services.broken_after_migration = failure == "unreadable"
    with pytest.raises(ComponentError) as raised:
        upgrade.upgrade_registry(services.stack)  # type: ignore[arg-type]
    assert type(raised.value) is kind, raised.value
    assert services.events[-3:] == [
        "migrate",
        "restore mlflow-20 setting aside mlflow_failed_",  # the dump's name and the failed one's, both dated
        "read contents (2 versions)",  # checked: the contents before
    ]
    assert "start mlflow" not in services.events
    assert said in raised.value.problem and "restored from its dump taken before the migration" in raised.value.problem
    assert "other databases untouched" in raised.value.problem and "kept as mlflow_failed_" in raised.value.problem


def test_a_schema_newer_than_the_pin_is_refused_as_newer_before_anything_is_done(services: _Services) -> None:
    services.revision = NEWER
    with pytest.raises(ComponentError) as raised:
        upgrade.upgrade_registry(services.stack)  # type: ignore[arg-type]
    assert f"revision {NEWER}, newer than the pinned MLflow's head {HEAD}" in raised.value.problem
    assert "run the newer MLflow pin" in raised.value.fix and "mlops dev restore" in raised.value.fix
    assert services.events == []  # not stopped, not dumped, not migrated


def test_mlflows_start_says_newer_for_a_newer_schema_and_older_for_an_older_one(services: _Services) -> None:
    services.revision = NEWER
    with pytest.raises(ComponentError) as raised:
        mlflow_server._refuse_an_older_schema(services.stack)  # type: ignore[arg-type]
    assert "newer than the pinned MLflow's head" in raised.value.problem and "older" not in raised.value.problem
    assert "mlops dev upgrade" not in raised.value.fix  # an upgrade cannot help it
    services.revision = PREVIOUS_HEAD
    with pytest.raises(ComponentError) as raised:
        mlflow_server._refuse_an_older_schema(services.stack)  # type: ignore[arg-type]
    assert f"revision {PREVIOUS_HEAD}, older than the pinned MLflow's head {HEAD}" in raised.value.problem
    assert "mlops dev upgrade --dir" in raised.value.fix
    services.revision = HEAD
    mlflow_server._refuse_an_older_schema(services.stack)  # type: ignore[arg-type]  # at the head: nothing said
