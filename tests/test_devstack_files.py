"""The loopback stack's own files, without starting a service: pid files and kept secrets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack import process, stack
from devstack.stack import LAUNCHERS, SERVICES, Ports, Stack
from tests.cli_runner import mlops


def _sleeper(*, own_session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=own_session)


def test_stop_signals_the_process_it_started(tmp_path: Path) -> None:
    """Positive control: a pid file written by `start` stops its process."""
    pid_file = tmp_path / "server.pid"
    pid = process.start(["sleep", "60"], tmp_path / "server.log", pid_file)
    assert process.read_pid(pid_file) == pid
    assert process.stop(pid_file, grace_seconds=5) is True
    assert not process.alive(pid)


def test_stop_never_signals_a_process_that_took_over_the_pid(tmp_path: Path) -> None:
    """A stale pid file whose pid now belongs to another process (a reused pid) is left alone."""
    stranger = _sleeper(own_session=True)
    try:
        pid_file = tmp_path / "server.pid"
        pid_file.write_text(f"{stranger.pid} 1\n")  # ours started at another time
        assert process.read_pid(pid_file) is None
        assert process.stop(pid_file, grace_seconds=1) is False
        assert stranger.poll() is None, "stop killed a process it did not start"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_pid_file_from_an_older_version_is_trusted_only_for_a_session_leader(tmp_path: Path) -> None:
    stranger = _sleeper(own_session=False)  # in our session: not a server we started
    try:
        pid_file = tmp_path / "server.pid"
        pid_file.write_text(f"{stranger.pid}\n")
        assert process.stop(pid_file, grace_seconds=1) is False
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_secrets_are_generated_per_stack_and_written_private(tmp_path: Path) -> None:
    first, second = Stack(root=tmp_path / "a"), Stack(root=tmp_path / "b")
    for secret in ("access_key", "secret_key", "db_password", "admin_password"):
        assert getattr(first, secret) != getattr(second, secret), secret
    assert "mlops-dev" not in {first.access_key, first.secret_key, first.db_password}
    first.root.mkdir()
    first.save()
    assert stat.S_IMODE(first.state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.root.stat().st_mode) & 0o066 == 0  # no one else lists or writes it
    assert Stack.load(first.root) == first


def test_another_port_base_moves_the_stack_and_keeps_its_keys(tmp_path: Path) -> None:
    """`--port-base` on an existing stack regenerated the MLflow admin password, locking it out."""
    stack = Stack(root=tmp_path / "services", ports=Ports.from_base(15400), mlflow_auth=True)
    stack.root.mkdir()
    stack.save()
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home")}
    result = mlops("dev", "env", "--dir", str(stack.root), "--port-base", "16400", env=env)
    assert result.returncode == 0, result.stderr
    printed = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert printed["AWS_ACCESS_KEY_ID"] == stack.access_key
    assert printed["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:16404"
    assert printed["MLFLOW_TRACKING_PASSWORD"] == stack.admin_password
    assert json.loads(stack.state_file.read_text())["admin_password"] == stack.admin_password


def test_up_starts_each_service_through_its_launcher_module_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 30 item 3: stack.py held the five launchers as private methods next to the description;
    each is now a function in a module of its own, and up dispatches through LAUNCHERS in order."""
    for service, launcher in LAUNCHERS.items():
        module = sys.modules[launcher.__module__]
        assert module.__name__ not in ("devstack.stack", __name__) and module.__doc__, service
    assert SERVICES == ("postgres", "pgbouncer", "redis", "s3", "mlflow")  # dependency order, as before
    assert not [name for name in vars(Stack) if name.startswith("_start_") or name in ("_sql", "_pg_bin")]

    started: list[tuple[str, Stack]] = []

    def recording(service: str) -> Callable[[Stack], float]:
        def launch(launched: Stack) -> float:
            started.append((service, launched))
            return 1.5

        return launch

    monkeypatch.setattr(stack, "LAUNCHERS", {service: recording(service) for service in SERVICES})
    services = Stack(root=tmp_path / "services")
    services.root.mkdir()
    (services.root / "run").mkdir()
    pid = process.start(["sleep", "60"], tmp_path / "s3.log", services.pid_file("s3"))  # s3 already runs
    try:
        timings = services.up(("postgres", "s3", "mlflow"))
    finally:
        process.stop(services.pid_file("s3"), grace_seconds=5)
    assert started == [("postgres", services), ("mlflow", services)], "a running service is left alone"
    assert timings == {"postgres": 1.5, "s3": 0.0, "mlflow": 1.5}
    assert not process.alive(pid)
    assert Stack.load(services.root) == services  # the state file up writes, as before
