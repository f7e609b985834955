"""`mlops` as a user or a pipeline task runs it, for the tests: `python -m mlops.cli` in a process
of its own, from this checkout, its output captured and a failing exit returned, not raised, so a
test reads the code, stdout and stderr (issue 30: the tests had grown three `mlops()` runners and
a dozen inline copies of this call).

The process is a child forked from the session's warm worker (pipelines/warm_worker.py, the one the
local runner sends pipeline tasks to), which has MLflow, Feast, GX, pandas and the rest imported:
a fresh interpreter spent 2-5 s of each of the suite's CLI calls importing them again. The child is
still a process of its own, with the call's whole environment, working directory, `sys.path` as
`python -m` builds it there, exit code, and separate stdout and stderr (pipelines/warm_task.py;
tests/pipelines/test_warm_worker.py compares it with a fresh interpreter). A call whose working
directory or PYTHONPATH holds another copy of the library's packages (a copied tree, a team
project with its own) runs in a fresh interpreter instead, as does every call with
MLOPS_TEST_CLI_ENGINE=subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO

__all__ = ["ENGINE_VARIABLE", "mlops"]

ENGINE_VARIABLE = "MLOPS_TEST_CLI_ENGINE"
"""`subprocess` runs every CLI call in a fresh interpreter; anything else (the default) forks it
from the warm worker where it can."""
_LIBRARY = ("components", "mlops", "pipelines", "devstack")


def _other_copy(cwd: Path, env: Mapping[str, str]) -> bool:
    """Whether `python -m mlops.cli` run in `cwd` with `env` could import a library package from
    somewhere other than this checkout (the worker has this checkout's `components` imported)."""
    folders = [cwd, *(Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return any(
        (folder / package).exists() and (folder / package).resolve() != (REPO / package).resolve()
        for folder in folders
        for package in _LIBRARY
    )


def mlops(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = REPO, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`mlops ARGS` with `env` (this process's environment when None), from `cwd`."""
    argv = [sys.executable, "-m", "mlops.cli", *args]
    chosen = dict(os.environ if env is None else env)
    if os.environ.get(ENGINE_VARIABLE) != "subprocess" and not _other_copy(Path(cwd), chosen):
        from pipelines import warm_worker

        try:
            worker = warm_worker.connect()
        except warm_worker.WarmUnavailable:
            worker = None
        if worker is not None:
            try:
                code, out, err = worker.run_module("mlops.cli", args, chosen, Path(cwd).resolve(), timeout)
            except TimeoutError:
                raise subprocess.TimeoutExpired(argv, timeout) from None
            return subprocess.CompletedProcess(argv, code, out, err)
    return subprocess.run(
        argv, cwd=cwd, env=None if env is None else dict(env), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
