"""Reloading a loopback service (SIGHUP) goes through one function, devstack.process.reload.

Issue 30 (repeated logic): the platform's PgBouncer reload (devstack/tenants.py) and a tenant
pooler's (devstack/tenant_pgbouncer.py) each read the pid file, found runuser's child and sent it
SIGHUP, with their own copy of the /proc children lookup. Real processes here: a service that
records the SIGHUP it gets, alone and behind a parent shell (as runuser is when we are root).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from devstack import process

SERVICE = """import signal, sys, time, pathlib
signal.signal(signal.SIGHUP, lambda *_: pathlib.Path(sys.argv[1]).write_text("reloaded"))
pathlib.Path(sys.argv[1] + ".ready").write_text("")
time.sleep(30)
"""


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _started(argv: list[str], marker: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    started = subprocess.Popen(argv, start_new_session=True)
    _wait_for(marker.with_name(marker.name + ".ready"))
    pid_file.write_text(f"{started.pid} {process.start_time(started.pid)}")
    return started


def test_reload_signals_the_service_behind_its_parent_or_itself_and_says_when_none_runs(tmp_path: Path) -> None:
    """issue 30: one reload for both PgBouncer reloads: the child of runuser, else the process."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    pid_file = tmp_path / "service.pid"
    assert process.reload(pid_file) is False  # nothing runs: nothing signalled

    alone = tmp_path / "alone"
    service = _started([sys.executable, str(script), str(alone)], alone, pid_file)
    try:
        assert process.children(service.pid) == []
        assert process.reload(pid_file) is True
        _wait_for(alone)
    finally:
        service.kill()
        service.wait()

    behind = tmp_path / "behind"
    parent = _started(["sh", "-c", f'"{sys.executable}" "{script}" "{behind}"; :'], behind, pid_file)
    try:
        assert len(process.children(parent.pid)) == 1
        assert process.reload(pid_file) is True
        _wait_for(behind)
        assert parent.poll() is None  # the parent shell did not get the SIGHUP (it would have ended)
    finally:
        for child in process.children(parent.pid):
            subprocess.run(["kill", str(child)], check=False)
        parent.wait(timeout=10)
    assert process.reload(pid_file) is False  # gone: its pid file no longer names a running process
