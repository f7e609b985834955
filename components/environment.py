"""Environment conventions shared by every step.

These platforms are air-gapped: libraries that phone home (MLflow telemetry, GX analytics)
would hang on a DNS lookup or leak metadata, so they are switched off unless the operator
sets the variable explicitly. Progress bars are off too: step output is read in logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

AIRGAP_DEFAULTS: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "FEAST_USAGE": "False",
    "GIT_PYTHON_REFRESH": "quiet",
    # Progress bars (GX, Feast) turn pod logs into noise; a log line per step says enough.
    "TQDM_DISABLE": "1",
}


def apply_airgap_defaults() -> None:
    """Set each telemetry switch to off unless the environment already decides."""
    for key, value in AIRGAP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def mlops_home() -> Path:
    """The one folder that holds all state of local runs (`$MLOPS_HOME`, default `./.mlops`)."""
    return Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()


@contextlib.contextmanager
def temporary_env(values: dict[str, str], *, replace: bool = False) -> Iterator[None]:
    """Set variables for a block and put the environment back afterwards.

    Clients such as MLflow's and boto3's read credentials from the environment at call time,
    so code acting as someone else (a tenant, a checked configuration) scopes it here.
    `replace` makes `values` the whole environment for the block.
    """
    saved = dict(os.environ)
    if replace:
        os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
