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
from typing import Any

__all__ = [
    "AIRGAP_DEFAULTS",
    "FOREIGN_MLFLOW_PLUGINS",
    "IMAGE_VARIABLE",
    "apply_airgap_defaults",
    "defer_feast_torch_import",
    "filter_mlflow_plugins",
    "mlops_home",
    "temporary_env",
]

IMAGE_VARIABLE = "MLOPS_IMAGE"
"""The component image a pod runs, set by the Argo and KFP renderings (absent on a laptop); the
lineage records it (components/lineage.py)."""

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


FOREIGN_MLFLOW_PLUGINS = {"mlflow.request_header_provider": ("feast.",)}
"""MLflow client plugins other packages register that no step may load. Feast's header provider
(1) imports Feast and, through it, torch into every process that imports MLflow: 3 s become 17 s
here; (2) sends the pod's Kubernetes ServiceAccount token to the tracking server as a bearer
token, a credential the tracking server has no business holding."""


def filter_mlflow_plugins() -> None:
    """Hide FOREIGN_MLFLOW_PLUGINS from MLflow's entry-point lookups (idempotent; other groups untouched)."""
    import importlib.metadata as metadata

    if getattr(metadata.entry_points, "_mlops_filtered", False):
        return
    original = metadata.entry_points

    def entry_points(**params: Any) -> Any:
        found: Any = original(**params)
        refused = FOREIGN_MLFLOW_PLUGINS.get(str(params.get("group", "")))
        if not refused:
            return found
        return metadata.EntryPoints(ep for ep in found if not ep.value.startswith(refused))

    entry_points._mlops_filtered = True  # type: ignore[attr-defined]
    setattr(metadata, "entry_points", entry_points)  # noqa: B010  (the module attribute MLflow looks up)


def defer_feast_torch_import() -> None:
    """Feast imports torch as Feast is imported (feast/torch_wrapper.py), for tensor outputs no
    step asks for: about 2 s in every process that touches Feast. Stand in for that module with
    one of the same API that imports torch when `get_torch()` is first called (idempotent; does
    nothing once Feast is imported)."""
    import sys
    import types

    if "feast" in sys.modules or "feast.torch_wrapper" in sys.modules:
        return
    lazy = types.ModuleType("feast.torch_wrapper", "Feast's torch wrapper, importing torch on first use.")

    def get_torch() -> Any:
        import torch

        lazy.TORCH_AVAILABLE = True  # type: ignore[attr-defined]
        return torch

    lazy.get_torch = get_torch  # type: ignore[attr-defined]
    lazy.TORCH_AVAILABLE = False  # type: ignore[attr-defined]
    sys.modules["feast.torch_wrapper"] = lazy


def mlops_home() -> Path:
    """The one folder that holds all state of local runs (`$MLOPS_HOME`, default `./.mlops`)."""
    return Path(os.environ.get("MLOPS_HOME", ".mlops")).resolve()


@contextlib.contextmanager
def temporary_env(values: dict[str, str], *, replace: bool = False) -> Iterator[None]:
    """Set variables for a block and put the environment back afterwards.

    Clients such as MLflow's and boto3's read credentials from the environment at call time,
    so code acting as someone else (a tenant, a checked configuration) scopes it here; the S3
    clients libraries cache per endpoint are dropped on the way in and out.
    `replace` makes `values` the whole environment for the block.
    """
    saved = dict(os.environ)
    if replace:
        os.environ.clear()
    os.environ.update(values)
    _forget_cached_clients()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _forget_cached_clients()


def _forget_cached_clients() -> None:
    """Drop the S3 clients that libraries cache per endpoint but not per credential: MLflow's
    (`_cached_get_s3_client`, keyed without the environment's keys), boto3's default session (which
    resolves the environment's keys once) and s3fs's instances. Kept
    across a change of environment, they would go on signing with the previous identity's key (a
    fresh-clone CI run saw a tenant's upload signed with an earlier test's key: InvalidAccessKeyId).
    Only modules already imported are touched."""
    import sys

    mlflow_s3 = sys.modules.get("mlflow.store.artifact.s3_artifact_repo")
    cached = getattr(mlflow_s3, "_cached_get_s3_client", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()
    boto3: Any = sys.modules.get("boto3")
    if boto3 is not None:
        boto3.DEFAULT_SESSION = None  # its credentials are resolved once, from the environment then
    s3fs = sys.modules.get("s3fs")
    filesystem = getattr(s3fs, "S3FileSystem", None)
    if filesystem is not None:
        filesystem.clear_instance_cache()
