"""`mlops dev upgrade`'s refusals and its reading of a failed migration, without services.

The upgrade itself, its restore and its verification run on real PostgreSQL in
tests/integration/test_registry_upgrade.py; here the parts that need none: a stack that is not
running is refused before anything is done, the revision path comes from MLflow's own alembic
scripts, and a failed `mlflow db upgrade` is read for the revision it stopped in, the database's
error, and whether the database did not answer (transient) or refused (permanent).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from devstack import upgrade

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
