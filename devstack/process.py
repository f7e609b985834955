"""Start, watch and stop one server process: pid files, readiness polling, ports."""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from components.errors import ComponentError

__all__ = [
    "SERVICE_USER",
    "STEP",
    "alive",
    "as_service_user",
    "children",
    "companion_venv",
    "find_binary",
    "free_port_base",
    "give_to_service_user",
    "merged_environment",
    "port_free",
    "port_open",
    "read_pid",
    "reload",
    "running_as_root",
    "start",
    "start_time",
    "stop",
    "tail",
    "wait_until",
    "write_private",
]

STEP = "dev"
# PostgreSQL and PgBouncer refuse to run as root; when we are root they run as this user.
SERVICE_USER = "postgres"


def companion_venv(variable: str, default: Path, make_target: str, contents: str) -> Path:
    """A server's own environment (the local Triton's, the transformer's): $variable, else
    `default`; a missing one is named with the make target that builds it."""
    from components.errors import ComponentError

    venv = Path(os.environ.get(variable) or default)
    if not (venv / "bin" / "python").exists():
        raise ComponentError(
            "serve",
            f"no {make_target} environment at {venv}",
            f"run `make {make_target}` (or point {variable} at a venv with {contents})",
        )
    return venv


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port_base(span: int, low: int = 10_000, high: int = 22_000) -> int:
    """A base port with `span` consecutive free ports (and their +10000 gRPC twins) above it.

    Tests start their own servers here. The range and its twins stay below Linux's ephemeral
    range (32768-60999): a port chosen there can be taken by any client's outgoing connection
    between the check and the server's bind (seen: MLflow restarting during a drill).
    """
    for _ in range(200):
        base = random.randrange(low, high - span)
        if all(port_free(base + offset) and port_free(base + offset + 10_000) for offset in range(span)):
            return base
    raise ComponentError(STEP, f"no {span} consecutive free ports between {low} and {high}", "free some ports")


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_service_user(argv: list[str]) -> list[str]:
    """Prefix a command so that it runs as the unprivileged service user when we are root."""
    if not running_as_root():
        return argv
    return ["runuser", "-u", SERVICE_USER, "--", *argv]


def give_to_service_user(path: Path) -> None:
    """Hand a data folder to the service user (a no-op when not root)."""
    if not running_as_root():
        return
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError as error:
        raise ComponentError(
            STEP,
            f"user {SERVICE_USER!r} does not exist; PostgreSQL and PgBouncer will not run as root",
            "install PostgreSQL from Debian (apt-get install postgresql), which creates the user",
        ) from error
    for folder, _dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)


def find_binary(name: str, *extra_dirs: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        for candidate in sorted(Path("/").glob(folder.lstrip("/")), reverse=True):
            if (candidate / name).is_file():
                return str(candidate / name)
    raise ComponentError(
        STEP,
        f"{name} is not installed",
        "run `make services-install` (apt-get install postgresql redis-server pgbouncer)",
    )


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None.

    A pid is reused once its process exits; the pair (pid, start time) is not.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces; count from after it
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def read_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is still the one we started, else None.

    The file holds "<pid> <start time>". A process whose start time differs took over a reused
    pid: it is not ours, and `stop` must never signal its group. A file from an older version
    holds only the pid; it is trusted only if that process leads its own session, as ours do.
    """
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) > 1:
        return pid if start_time(pid) == fields[1] else None
    try:
        return pid if os.getsid(pid) == pid else None
    except OSError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write a file that holds secrets: mode 0600 from the first byte, in a 0700 folder, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def alive(pid: int | None) -> bool:
    from components.artifacts import pid_alive

    if not pid or not pid_alive(pid):
        return False
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def reload(pid_file: Path) -> bool:
    """Make the running service of `pid_file` reread its files (SIGHUP); False when none runs.
    When we are root the pid file holds runuser's pid (as_service_user), and the service is its
    child: the children get the signal, else the process itself."""
    pid = read_pid(pid_file)
    if not alive(pid):
        return False
    assert pid is not None
    for target in children(pid) or [pid]:
        os.kill(target, signal.SIGHUP)
    return True


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (Linux /proc); none when it has none or is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def merged_environment(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """This process's environment with `env` over it; a None value removes the variable."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {key: value for key, value in merged.items() if value is not None}


def start(
    argv: list[str],
    log: Path,
    pid_file: Path,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a server in its own session (so its workers die with it); returns the pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=merged_environment(env),
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid} {start_time(process.pid) or ''}\n")
    return process.pid


def stop(pid_file: Path, first_signal: int = signal.SIGTERM, grace_seconds: float = 15.0) -> bool:
    """Stop the process group behind a pid file: a polite signal, then SIGKILL after the grace."""
    pid = read_pid(pid_file)
    if not alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    assert pid is not None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, first_signal)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def wait_until(ready: Callable[[], bool], *, what: str, log: Path, pid: int, timeout: float) -> float:
    """Poll `ready` until true; fail with the log's tail if the process dies or time runs out."""
    started = time.monotonic()
    while True:
        try:
            if ready():
                return time.monotonic() - started
        except Exception:
            pass
        if not alive(pid):
            raise ComponentError(STEP, f"{what} exited while starting:\n{tail(log)}", f"read {log}")
        if time.monotonic() - started > timeout:
            raise ComponentError(STEP, f"{what} not ready after {timeout:.0f} s:\n{tail(log)}", f"read {log}")
        time.sleep(0.2)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
