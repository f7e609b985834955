"""Failure classes: permanent exits 2 and is never retried, transient exits 75 and is retried.

The library errors below are the real classes the clients raise (redis, botocore, psycopg,
MLflow), built the way the clients build them, not look-alikes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.errors import (
    PERMANENT_EXIT_CODE,
    TRANSIENT_EXIT_CODE,
    UNEXPECTED_EXIT_CODE,
    ComponentError,
    TransientError,
    classify,
    exit_code_for,
)
from tests.conftest import REPO


def _client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def _mlflow_error(code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException("server said no", error_code=getattr(databricks_pb2, code))


def _mlflow_database_full() -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    text = "could not extend file base/16384/2619: No space left on device"
    return MlflowException(text, error_code=databricks_pb2.TEMPORARILY_UNAVAILABLE)


def _wrapped(inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as error:
            raise RuntimeError("feast could not write") from error
    except RuntimeError as outer:
        return outer


TRANSIENT = {
    "connection refused": lambda: ConnectionRefusedError(111, "Connection refused"),
    "redis down": lambda: __import__("redis").exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    "redis timeout": lambda: __import__("redis").exceptions.TimeoutError("Timeout reading from socket"),
    "postgres down": lambda: __import__("psycopg").OperationalError("connection failed: Connection refused"),
    "s3 500": lambda: _client_error(500, "InternalError"),
    "s3 throttled": lambda: _client_error(503, "SlowDown"),
    "s3 unreachable": lambda: __import__("botocore.exceptions").exceptions.EndpointConnectionError(
        endpoint_url="http://127.0.0.1:9"
    ),
    "mlflow 503": lambda: _mlflow_error("TEMPORARILY_UNAVAILABLE"),
    "wrapped redis": lambda: _wrapped(__import__("redis").exceptions.ConnectionError("reset")),
    "sqlite locked": lambda: __import__("sqlite3").OperationalError("database is locked"),
    # a service's own disk, quoted in its answer: the service's problem, retried as any 5xx (helper-94)
    "mlflow's database full": _mlflow_database_full,
    "s3 500, the server's disk full": lambda: _client_error(500, "XMinioStorageFull No space left on device"),
    "postgres full": lambda: __import__("sqlalchemy").exc.OperationalError(
        "INSERT", {}, Exception("could not extend file base/16384/2619: No space left on device")
    ),
}
NOT_TRANSIENT = {
    "s3 403": lambda: _client_error(403, "AccessDenied"),
    "s3 404": lambda: _client_error(404, "NoSuchKey"),
    "mlflow bad request": lambda: _mlflow_error("INVALID_PARAMETER_VALUE"),
    "a bug": lambda: KeyError("features"),
    "sqlite syntax": lambda: __import__("sqlite3").OperationalError("near 'selct': syntax error"),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_service_failures_are_transient(name: str) -> None:
    failure = classify(TRANSIENT[name](), "register")
    assert isinstance(failure, TransientError) and failure.retryable
    assert exit_code_for(TRANSIENT[name]()) == TRANSIENT_EXIT_CODE


@pytest.mark.parametrize("name", sorted(NOT_TRANSIENT))
def test_other_library_errors_stay_unexpected(name: str) -> None:
    assert classify(NOT_TRANSIENT[name](), "register") is None
    assert exit_code_for(NOT_TRANSIENT[name]()) == UNEXPECTED_EXIT_CODE


def _python_disk_full() -> BaseException:
    try:
        with open("/dev/full", "w") as full:  # the kernel's always-full device: a real ENOSPC
            full.write("x")
    except OSError as error:
        return error
    raise AssertionError("/dev/full accepted a write")


def _duckdb_disk_full() -> BaseException:
    import duckdb

    try:  # DuckDB's spill and its COPY write through the same file system layer
        duckdb.connect().execute("COPY (SELECT range FROM range(100000)) TO '/dev/full' (FORMAT csv)")
    except duckdb.IOException as error:
        return error
    raise AssertionError("DuckDB wrote to /dev/full")


@pytest.mark.parametrize("make", [_python_disk_full, _duckdb_disk_full], ids=["python", "duckdb"])
def test_a_full_disk_is_permanent_and_says_how_much_room_the_step_needs(make: Any) -> None:
    """Materialize at 100M rows filled this machine's disk with DuckDB's spill: it exited 1 with a
    traceback, which Argo retries, an hour of work each time. It is permanent, with the fix."""
    error = make()
    failure = classify(error, "materialize")
    assert failure is not None and not failure.retryable and not isinstance(failure, TransientError)
    assert "No space left on device" in failure.problem and "ephemeral_storage" in failure.fix
    assert exit_code_for(error) == PERMANENT_EXIT_CODE
    wrapped = RuntimeError("the join failed")
    wrapped.__cause__ = error
    assert exit_code_for(wrapped) == PERMANENT_EXIT_CODE  # found through the chain
    # control: another OSError of the same kind is no full disk, and stays unexpected
    assert classify(PermissionError(13, "Permission denied"), "materialize") is None


def test_component_errors_carry_their_class_in_the_message() -> None:
    permanent = ComponentError("validate", "3 rows have a negative amount", "fix the extract")
    transient = TransientError("register", "MLflow is not reachable", "start it")
    assert exit_code_for(permanent) == PERMANENT_EXIT_CODE and not permanent.retryable
    assert exit_code_for(transient) == TRANSIENT_EXIT_CODE
    assert str(permanent).endswith(
        "failure: permanent (exit 2: a retry gives the same answer; fix the input or the config)"
    )
    assert "failure: transient (exit 75" in str(transient)
    assert exit_code_for(None) == 0


ATTEMPTS_FILE = "MLOPS_TEST_ATTEMPTS_FILE"


def flaky(*, fail_times: int, permanent: bool = False) -> dict[str, Any]:
    """A component that fails `fail_times` times (counted in a file across attempts), then succeeds."""
    import os

    counter = Path(os.environ[ATTEMPTS_FILE])
    attempts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempts))
    if permanent:
        raise ComponentError("flaky", "the data is bad", "fix it")
    if attempts <= fail_times:
        raise ConnectionRefusedError(111, "Connection refused")
    return {"step": "flaky", "attempts": attempts}


def _run_step(tmp_path: Path, policy: dict[str, Any] | None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, sys; from pipelines.runtime import run_step;"
        "run_step('tests.components.test_errors:flaky', **json.loads(sys.argv[1]))"
    )
    env = {**__import__("os").environ, ATTEMPTS_FILE: str(tmp_path / "attempts")}
    if policy is not None:
        env["MLOPS_STEP_RETRY"] = json.dumps(policy)
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


POLICY = {
    "name": "io-bound",
    "limit": 2,
    "retry_on": "Always",
    "backoff_seconds": 0,
    "factor": 2,
    "max_backoff_seconds": 0,
    "max_duration_seconds": 60,
}


def test_in_step_retries_ride_out_a_transient_failure(tmp_path: Path) -> None:
    done = _run_step(tmp_path, POLICY, fail_times=2)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"step": "flaky", "attempts": 3}
    assert done.stderr.count("RETRY ") == 2


def test_in_step_retries_give_up_with_the_transient_exit_code(tmp_path: Path) -> None:
    done = _run_step(tmp_path, POLICY, fail_times=5)
    assert done.returncode == TRANSIENT_EXIT_CODE
    assert (tmp_path / "attempts").read_text() == "3"
    assert "failure: transient (exit 75" in done.stderr and "Traceback" not in done.stderr


def test_a_permanent_failure_is_never_retried(tmp_path: Path) -> None:
    done = _run_step(tmp_path, POLICY, fail_times=0, permanent=True)
    assert done.returncode == PERMANENT_EXIT_CODE
    assert (tmp_path / "attempts").read_text() == "1"
    assert "RETRY" not in done.stderr and "failure: permanent (exit 2" in done.stderr


def test_without_a_policy_a_transient_failure_exits_75_at_once(tmp_path: Path) -> None:
    """Argo's case: the engine retries the pod, so the step does not retry in-process."""
    done = _run_step(tmp_path, None, fail_times=1)
    assert done.returncode == TRANSIENT_EXIT_CODE
    assert (tmp_path / "attempts").read_text() == "1"
