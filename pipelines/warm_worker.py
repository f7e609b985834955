"""The local runner's warm worker: one long-lived process per Python environment and library code
that has already imported the step libraries, and forks one child per pipeline task, or per
`python -m <module>` call a client sends (`run_module`).

Two clients: kfp.local's SubprocessRunner (a pipeline task's command, `run`: stdout and stderr as one
"O" stream, printed line by line as kfp.local prints them) and the tests' CLI runner
(tests/cli_runner.py: `python -m mlops.cli ARGS`, `run_module`: stdout as "O" and stderr apart as "E",
returned with the exit code as subprocess.run(capture_output=True) would give them).

Why: kfp.local's SubprocessRunner starts a fresh interpreter per task, and each task then imports
its libraries again (Feast about 6 s, Great Expectations 4 s, Evidently 4.7 s, MLflow and XGBoost
1.5 s each, measured on 2 cores under load), so a run of eight tasks spent more time importing than
working (issue 33 item 3). The warm worker imports them once and keeps them.

What stays as before, so failure classes and retries behave exactly as under kfp.local:
- kfp.local still orchestrates: the DAG, its cache, retries and outputs. Only the one call that runs a
  task's command (`kfp.local.subprocess_task_handler.run_local_subprocess`) is sent here instead.
- Each task is its own process (a child forked from the worker), with the task's own environment
  (the whole of it, replaced), working directory, `sys.path` as `python3 -m` would build it there,
  and its own exit code; its atexit handlers and non-daemon threads run before it exits, as at an
  interpreter's end. Its output streams back as it is written.
- A command that is not a lightweight Python component's (a pip install before it, a container
  component) runs as kfp.local runs it, in a subprocess.

Which worker: the key is the interpreter, the `components` package's location and the preload list
(the environment), then the library's code fingerprint (pipelines/caching.code_fingerprint) and the
site-packages folders' modification times (an install or uninstall changes them). A change of the
latter starts a new worker and stops the environment's older ones; a worker exits after
MLOPS_WARM_IDLE_SECONDS (default 900) without a task. Workers listen on a Unix socket in a folder
only this user can open (`$XDG_RUNTIME_DIR` or /tmp, `mlops-warm-<uid>`, mode 0700, checked: a folder
someone else owns or others can enter is refused, and the run falls back to kfp.local's subprocesses).

What the worker imports (PRELOAD) is third-party libraries only, plus the `components` package's
air-gap defaults (components/environment.py) so they apply before those libraries load, as in a task.
Steps' own modules are imported by each child, from disk.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pipelines import warm_task

__all__ = [
    "DIRECTORY_VARIABLE",
    "IDLE_VARIABLE",
    "PRELOAD",
    "PRELOAD_VARIABLE",
    "WarmUnavailable",
    "WarmWorker",
    "connect",
    "is_lightweight_command",
    "serve",
    "stop_all",
]

PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "duckdb",
    "sklearn.metrics",
    "xgboost",
    "mlflow",
    "great_expectations",
    "feast",
    "evidently",
    "kfp.dsl.executor_main",
)
"""The step libraries a worker imports before it serves: what validate (GX), materialize (Feast),
drift (Evidently), train (XGBoost), evaluate (scikit-learn) and register (MLflow) load. torch is left
out: only the PyTorch model kind needs it, and it would double the worker's memory for every run."""
PRELOAD_VARIABLE = "MLOPS_WARM_PRELOAD"
"""A comma-separated list that replaces PRELOAD (part of the worker's key): for a team environment
with other libraries, or a test that needs a worker quickly."""
IDLE_VARIABLE = "MLOPS_WARM_IDLE_SECONDS"
DIRECTORY_VARIABLE = "MLOPS_WARM_DIR"
"""The folder the workers' sockets live in, instead of `$XDG_RUNTIME_DIR/mlops-warm-<uid>` (held to the
same checks): a test session keeps its workers apart from another session's, and stops only its own."""
_IDLE_DEFAULT = 900
_START_SECONDS = 180.0
_COMPONENTS_VARIABLE = "MLOPS_WARM_COMPONENTS"
_SOCKET_PATH_MAX = 100  # Linux's sun_path holds 108 bytes; the worker binds `<socket>.<pid>` first
_HEADER = struct.Struct("!cI")


class WarmUnavailable(RuntimeError):
    """No worker could be reached or started; the caller runs tasks as kfp.local does."""


def is_lightweight_command(full_command: Sequence[str]) -> bool:
    """kfp's command for a lightweight Python component with nothing to install first:
    `sh -ec <script writing $0 to ephemeral_component.py and running the executor> <source> args...`."""
    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return False
    script = full_command[2]
    installs = "pip install" in script or "ensurepip" in script  # a folder named pipelines is no installer
    return "ephemeral_component.py" in script and warm_task.EXECUTOR in script and not installs


# ---- framing -------------------------------------------------------------------------------------


def _send(conn: socket.socket, kind: bytes, payload: bytes) -> None:
    conn.sendall(_HEADER.pack(kind, len(payload)) + payload)


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the warm worker closed the connection mid-message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(conn: socket.socket) -> tuple[bytes, bytes]:
    kind, size = _HEADER.unpack(_receive_exactly(conn, _HEADER.size))
    return kind, _receive_exactly(conn, size)


# ---- the client (kfp.local's side) ---------------------------------------------------------------


class WarmWorker:
    """A connection factory for one worker: `run` is a drop-in for kfp.local's run_local_subprocess."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, full_command: list[str], env_vars: Mapping[str, str] | None = None) -> int:
        """Run one task's command in a child of the worker, printing its output line by line as
        kfp.local does; the child's exit code, or 1 with the reason if the worker went away. Any
        other command runs as kfp.local runs it."""
        if not is_lightweight_command(full_command):
            from kfp.local import subprocess_task_handler

            original = getattr(
                subprocess_task_handler, "_mlops_original_run", subprocess_task_handler.run_local_subprocess
            )
            return int(original(full_command=full_command, env_vars=dict(env_vars or {}) or None))
        return self._run(full_command, env_vars)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """kfp.local's SubprocessRunner sends each task here for the block."""
        from kfp.local import subprocess_task_handler as handler

        original = handler.run_local_subprocess
        setattr(handler, "_mlops_original_run", original)  # noqa: B010
        handler.run_local_subprocess = self.run
        try:
            yield
        finally:
            handler.run_local_subprocess = original

    def run_module(
        self, module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float
    ) -> tuple[int, str, str]:
        """`python -m module args` in a child of the worker, with `env` (whole) and `cwd`: its exit
        code, stdout and stderr, as subprocess.run(capture_output=True) gives them. Past `timeout`
        the connection is closed, which kills the child, and TimeoutError is raised."""
        request = {"module": module, "args": list(args), "env": dict(env), "cwd": str(cwd), "separate_stderr": True}
        streams = {b"O": bytearray(), b"E": bytearray()}
        with self._connection() as conn:
            conn.settimeout(timeout)
            try:
                _send(conn, b"R", json.dumps(request).encode())
                while True:
                    kind, payload = _receive(conn)
                    if kind == b"X":
                        out, err = (bytes(streams[k]).decode(errors="replace") for k in (b"O", b"E"))
                        return int(json.loads(payload)["code"]), out, err
                    streams[kind] += payload
            except TimeoutError:
                raise TimeoutError(f"python -m {module} {' '.join(args)} ran past {timeout} s") from None

    def _connection(self) -> socket.socket:
        """A connection to the worker; one that is gone before the task was sent (stopped for newer
        code, idle, killed) is replaced by this code's worker, started if need be: nothing ran yet."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            try:
                self.path = connect().path
            except WarmUnavailable as error:
                raise ConnectionError(f"no worker to replace the one that went away: {error}") from error
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(self.path))
        return conn

    def _run(self, full_command: list[str], env_vars: Mapping[str, str] | None) -> int:
        request = {"argv": list(full_command), "env": {**os.environ, **(env_vars or {})}, "cwd": os.getcwd()}
        pending = b""
        try:
            with self._connection() as conn:
                _send(conn, b"R", json.dumps(request).encode())
                while True:
                    kind, payload = _receive(conn)
                    if kind == b"O":
                        pending += payload
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            print(line.decode(errors="replace"), flush=True)
                    elif kind == b"X":
                        if pending:
                            print(pending.decode(errors="replace"), flush=True)
                        print("\n")
                        return int(json.loads(payload)["code"])
        except (OSError, ConnectionError, ValueError) as error:
            print(f"the warm worker ({self.path}) went away mid-task: {error}; rerun with --engine kfp-local "
                  "if it happens again", flush=True)  # fmt: skip
            return 1


def _directory() -> Path:
    named = os.environ.get(DIRECTORY_VARIABLE)
    folder = Path(named) if named else Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"mlops-warm-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise WarmUnavailable(f"{folder} is not a folder only this user owns and can enter (mode 0700)")
    return folder


def _key() -> str:
    import components
    from pipelines.caching import code_fingerprint

    sites = sorted(p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p))
    place = [sys.executable, sys.prefix, str(Path(components.__file__).resolve().parent), ",".join(_preloaded())]
    content = [code_fingerprint(), *(f"{site}:{os.stat(site).st_mtime_ns}" for site in sites)]
    return f"{_digest(place)}-{_digest(content)}"


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        _send(probe, b"P", b"")
        return True


def connect(timeout: float = _START_SECONDS) -> WarmWorker:
    """The worker for this environment and code, started if none is listening; WarmUnavailable
    when none can be (no fork on this platform, an unsafe folder, a worker that failed to start)."""
    if not hasattr(os, "fork"):
        raise WarmUnavailable("this platform has no fork()")
    folder = _directory()
    key = _key()
    path = folder / f"{key}.sock"
    if len(os.fsencode(f"{path}.{os.getpid()}")) > _SOCKET_PATH_MAX:
        raise WarmUnavailable(f"{folder} is too deep for a Unix socket's path; set XDG_RUNTIME_DIR to a short folder")
    if _alive(path):
        return WarmWorker(path)
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(path):
            return WarmWorker(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a worker killed without its cleanup left its socket
        log = folder / f"{key}.log"
        idle = os.environ.get(IDLE_VARIABLE, str(_IDLE_DEFAULT))
        with open(log, "ab") as out:
            import components

            expected = {_COMPONENTS_VARIABLE: str(Path(components.__file__).resolve())}
            worker = subprocess.Popen(
                [sys.executable, "-m", "pipelines.warm_worker", "serve", str(path), "--idle", idle],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=folder, env={**os.environ, **expected},
            )  # fmt: skip
        stop_all(pattern=f"{key.split('-')[0]}-*", keep=key)  # this environment's workers for older code
        deadline = time.monotonic() + timeout
        while not _alive(path):
            if worker.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise WarmUnavailable(f"the warm worker did not start (see {log}): {tail}")
            time.sleep(0.05)
    return WarmWorker(path)


# ---- the worker ----------------------------------------------------------------------------------


def _preloaded() -> tuple[str, ...]:
    chosen = os.environ.get(PRELOAD_VARIABLE)
    return tuple(name.strip() for name in chosen.split(",") if name.strip()) if chosen is not None else PRELOAD


def stop_all(since: float | None = None, pattern: str = "*", keep: str = "") -> list[int]:
    """Stop this user's workers (each wrote `<key>.pid` beside its socket): those whose key matches
    `pattern`, but `keep`, started at or after `since` (a time.time()) if given; the pids stopped.
    A pid file whose process is not a worker (its pid reused) is removed and nothing is signalled.
    A task already running in a stopped worker's child runs to its end."""
    stopped = []
    try:
        folder = _directory()
    except WarmUnavailable:
        return []
    for pid_file in folder.glob(f"{pattern}.pid"):
        if pid_file.stem == keep:
            continue
        with contextlib.suppress(OSError):
            if since is not None and pid_file.stat().st_mtime < since:
                continue
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
            if b"pipelines.warm_worker" in command:
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return stopped


def _preload() -> dict[str, str]:
    """Import the step libraries; what their imports added to the environment (Feast's metrics
    folder), which each child is given as a process that imported them would have it."""
    import components  # the air-gap defaults, before any library loads

    expected = os.environ.pop(_COMPONENTS_VARIABLE, "")
    found = str(Path(components.__file__).resolve())
    if expected and found != expected:  # the client's library is not the one this interpreter finds
        raise SystemExit(f"warm worker: components is {found} here but {expected} for the client: not serving")
    before = dict(os.environ)
    for module in _preloaded():
        try:
            importlib.import_module(module)
        except ImportError as error:  # a team image without one: its steps import what they have
            print(f"warm worker: {module} not preloaded ({error})", flush=True)
    return {key: value for key, value in os.environ.items() if before.get(key) != value}


def _supervise(conn: socket.socket, added: Mapping[str, str], own_pythonpath: Sequence[str]) -> None:
    """One connection: fork the request's child, stream its output back (stdout as O, and stderr as
    E when the request keeps them apart, else both as O), then its exit code. A client that goes
    away (killed, timed out) takes the child with it."""
    kind, payload = _receive(conn)
    if kind != b"R":
        return
    request = json.loads(payload)
    pipes = [os.pipe(), os.pipe()] if request.get("separate_stderr") else [os.pipe()]
    child = os.fork()
    if child == 0:
        conn.close()
        for read, _ in pipes:
            os.close(read)
        os.dup2(pipes[0][1], 1)
        os.dup2(pipes[-1][1], 2)
        for _, write in pipes:
            os.close(write)
        os._exit(warm_task.execute(request, added, own_pythonpath))
    for _, write in pipes:
        os.close(write)
    kinds = {pipes[0][0]: b"O", pipes[-1][0]: b"E" if len(pipes) == 2 else b"O"}
    watch = selectors.DefaultSelector()
    for read in kinds:
        watch.register(read, selectors.EVENT_READ)
    watch.register(conn, selectors.EVENT_READ)
    open_outputs = set(kinds)
    while open_outputs:
        for ready, _ in watch.select():
            if ready.fileobj is conn:  # the client sends nothing more: readable means it left
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                return
            read = int(ready.fd)
            chunk = os.read(read, 1 << 16)
            if not chunk:
                watch.unregister(read)
                os.close(read)
                open_outputs.discard(read)
                continue
            _send(conn, kinds[read], chunk)
    _, status = os.waitpid(child, 0)
    _send(conn, b"X", json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode())


def serve(path: Path, idle: float) -> None:
    """Preload, listen on `path` (bound under a temporary name, renamed once ready, so a client sees
    only a worker that can serve), fork a supervisor per connection, exit after `idle` s without one."""
    own_pythonpath = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    added = _preload()
    # the libraries' exit handlers (Feast removes its metrics folder) are the worker's, never a task's:
    # each child runs only the handlers its own task registers
    atexit._clear()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path.with_name(f"{path.name}.{os.getpid()}")
    listener.bind(str(staging))
    os.chmod(staging, 0o600)
    listener.listen(64)
    os.rename(staging, path)
    identity = path.stat().st_ino
    path.with_suffix(".pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped as they end
    listener.settimeout(idle)
    print(f"warm worker {os.getpid()} serving on {path}", flush=True)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            conn.settimeout(None)
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                try:
                    with contextlib.suppress(OSError, ConnectionError):
                        _supervise(conn, added, own_pythonpath)
                finally:
                    os._exit(0)
            conn.close()
    finally:
        with contextlib.suppress(OSError):
            if path.stat().st_ino == identity:
                path.unlink()
                path.with_suffix(".pid").unlink()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.warm_worker")
    sub = parser.add_subparsers(dest="command", required=True)
    serving = sub.add_parser("serve", help="run a worker on SOCKET (mlops run starts one itself)")
    serving.add_argument("socket")
    serving.add_argument("--idle", type=float, default=_IDLE_DEFAULT)
    args = parser.parse_args(argv)
    serve(Path(args.socket), args.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
