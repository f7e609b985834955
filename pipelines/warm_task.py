"""What a warm worker's forked child does to become one pipeline task (pipelines/warm_worker.py):
take the task's whole environment, working directory and `sys.path` as `python3 -m` would build
them, read again what the preloaded libraries read from the environment at import, run kfp's
executor on the task's component, then do what an interpreter does at its end (non-daemon threads,
atexit handlers, flushed streams) and return the exit code.

Why apart from the worker: the worker is a server (sockets, keys, lifetimes); this is the one place
where a forked process must come out indistinguishable from a fresh interpreter, and what it must
reset grows with the libraries preloaded.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import runpy
import shutil
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXECUTOR", "execute"]

EXECUTOR = "kfp.dsl.executor_main"
"""The module kfp.local's lightweight-component command runs (`python3 -m kfp.dsl.executor_main`)."""


def _child_path(cwd: str, env: Mapping[str, str], own_pythonpath: Sequence[str]) -> list[str]:
    """`python3 -m` in `cwd` with `env`: the folder, PYTHONPATH's entries, then the interpreter's own."""
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    base = [entry for entry in sys.path[1:] if entry not in own_pythonpath]
    return [cwd, *extra, *base]


def _reread_fsspec() -> None:
    config = sys.modules["fsspec.config"]
    config.conf.clear()
    folder = os.environ.get("FSSPEC_CONFIG_DIR", os.path.join(os.path.expanduser("~"), ".config/fsspec"))
    config.set_conf_files(folder, config.conf)
    config.set_conf_env(config.conf)


def _reread_dask() -> None:
    sys.modules["dask.config"].refresh()


_IMPORT_TIME_READERS = {"fsspec.config": _reread_fsspec, "dask.config": _reread_dask}
"""Libraries the worker preloads (Feast and MLflow pull them in) that read the environment once, when
imported: fsspec (FSSPEC_S3_ENDPOINT_URL, FSSPEC_S3_KEY: where s3fs, and so Feast's offline store,
reads the data) and dask (DASK_*). Each child reads them again from the task's own environment, as
its import would have; otherwise a task would reach the object store of whoever started the worker."""


def _reread_environment() -> None:
    for module, reread in _IMPORT_TIME_READERS.items():
        if module in sys.modules:
            reread()


def _become(request: Mapping[str, Any], added: Mapping[str, str], own_pythonpath: Sequence[str]) -> None:
    """The request's working directory, whole environment, `sys.path` and fresh standard streams."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for key, value in added.items():
        os.environ.setdefault(key, value)
    _reread_environment()
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    sys.path[:] = _child_path(request["cwd"], request["env"], own_pythonpath)
    if "numpy" in sys.modules:  # a fresh interpreter seeds numpy's global generator from the OS; so does each task
        sys.modules["numpy"].random.seed()


def _run_as_main(module: str) -> int:
    """`python -m module` from here on: its exit code, and an interpreter's end (threads, atexit, flush)."""
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
    except BaseException:  # an interpreter prints it and exits 1
        traceback.print_exc()
        code = 1
    import threading

    with contextlib.suppress(Exception):
        getattr(threading, "_shutdown")()  # noqa: B009  (wait for non-daemon threads, as at an interpreter's exit)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):  # handlers the libraries bound at import
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    return code


def execute(request: dict[str, Any], added: Mapping[str, str], own_pythonpath: Sequence[str]) -> int:
    """In the child: become the request's process and run it. A kfp task (`argv`, the lightweight
    component's command) runs kfp's executor on its component; a `module` request runs
    `python -m <module> <args>` (what the tests' CLI runner sends: tests/cli_runner.py)."""
    _become(request, added, own_pythonpath)
    if "module" in request:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # no input, as subprocess.run(capture_output=True) gives none
        sys.argv = [request["module"], *request["args"]]
        return _run_as_main(str(request["module"]))
    argv: list[str] = request["argv"]
    os.environ["_KFP_RUNTIME"] = "true"
    program = Path(tempfile.mkdtemp())
    (program / "ephemeral_component.py").write_text(argv[3])
    sys.argv = [EXECUTOR, "--component_module_path", str(program / "ephemeral_component.py"), *argv[4:]]
    try:
        return _run_as_main(EXECUTOR)
    finally:
        shutil.rmtree(program, ignore_errors=True)
