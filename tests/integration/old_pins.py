"""The previous pins of MLflow and Feast, installed once into a cache and run beside this checkout.

Issue 34 item 6 rehearses an upgrade from a registry the previous pin wrote. MLflow and Feast were
pinned at 3.17.2 and 0.67.0 since this repository's first commit, so the previous pin is each one's
previous minor release whose stored format differs:

- MLflow 3.16.1: the last release before 3.17, whose wheel adds two alembic revisions to the tracking
  schema (75868b020152 "add sql trace analytics schema", dc11669786a5 "add job executor persistence
  model"); 3.16.1's head is b7e2c1a4d9f3. Every 3.17.x release has the same head.
- Feast 0.66.0: the minor release before 0.67. Its SQL registry has the same tables and columns
  (feast/infra/registry/sql.py: no table changed; Feast has no registry migrations), its protos
  differ in DataFormat and SavedDataset; the rehearsal shows the registry it wrote read whole.

A full virtual environment of an old MLflow pulls about 1 GB. Instead the old distributions alone,
`pip install --no-deps --target <cache>/<name>-<version>`, are put in front of this checkout's
environment with PYTHONPATH, so the old MLflow or Feast runs on the pinned dependencies (both import
and write with them: the rehearsal would fail otherwise). The folder is keyed by version under
$XDG_CACHE_HOME (default ~/.cache)/private-mlops/old-pins/ and reused by later runs: a fresh machine
downloads about 110 MB once. pip must reach the package index then; if it cannot, the test fails
naming the command that failed.

Run as `python -m tests.integration.old_pins ROLE JSON` with that PYTHONPATH, this module plays the
old pin's part: `register` writes versions, aliases and history with this checkout's register step
(components/steps/register.py) on the old MLflow; `materialize` runs the materialize step on the old
Feast. Each prints one JSON line, with the version that actually ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DISTRIBUTIONS", "PREVIOUS", "cache_root", "installed", "run_old"]

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = {"mlflow": "3.16.1", "feast": "0.66.0"}
"""The previous pin of each (see above for why these)."""
DISTRIBUTIONS = {"mlflow": ("mlflow", "mlflow-skinny", "mlflow-tracing"), "feast": ("feast",)}
"""What `--no-deps` installs for each: the distributions that carry its version."""


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "private-mlops" / "old-pins"


def installed(name: str) -> Path:
    """The folder holding the previous pin of `name`, installed on first use (atomically: a rename)."""
    version = PREVIOUS[name]
    folder = cache_root() / f"{name}-{version}"
    if (folder / ".complete").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-{version}-"))
    argv = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--target",
        str(scratch),
        *(f"{dist}=={version}" for dist in DISTRIBUTIONS[name]),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(
            f"installing the previous {name} pin failed ({' '.join(argv[2:])}): pip must reach the package"
            f" index once to fill {folder.parent}:\n{done.stderr[-2000:]}"
        )
    (scratch / ".complete").write_text(version)
    try:
        scratch.rename(folder)
    except OSError:  # another worker finished first: keep its copy
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def run_old(name: str, role: str, payload: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run `role` of this module with the previous pin of `name` in front; its JSON answer."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed(name)), str(REPO)])}
    environment["MLFLOW_DISABLE_TELEMETRY"] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.old_pins", role, json.dumps(payload)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{role} on {name} {PREVIOUS[name]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _register(payload: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from mlflow.store.db import utils

    from components.config import RegisterSettings
    from components.platform import model_registry
    from components.steps.register import register

    versions = []
    for item in payload["registrations"]:
        out = Path(item["out"])
        out.mkdir(parents=True, exist_ok=True)
        summary = register(
            item["model"],
            item["metadata"],
            item["metrics"],
            str(out / "registration.json"),
            str(out / "card.md"),
            settings=RegisterSettings(model_name=item["name"], experiment="upgrade"),
            pipeline="fraud",
            tracking_uri=payload["uri"],
            artifact_root=payload["artifact_root"],
            lineage=item.get("lineage"),
        )
        versions.append([item["name"], int(summary["version"])])
    client = model_registry.client_at(payload["uri"])
    for model, alias, version in payload["aliases"]:
        client.set_registered_model_alias(model, alias, str(version))
    for model, entry in payload["history"]:
        model_registry.append_history(client, model, model_registry.HistoryEntry(**entry))
    return {"version": mlflow.__version__, "head": utils._get_latest_schema_revision(), "versions": versions}


def _materialize(payload: dict[str, Any]) -> dict[str, Any]:
    import feast

    from components.config import MaterializeSettings
    from components.steps.materialize import materialize

    summary = materialize(
        payload["dataset"],
        payload["feature_repo"],
        payload["train"],
        payload["holdout"],
        settings=MaterializeSettings(**payload["settings"]),
        store_dir=payload["store_dir"],
        store_config=payload["store_config"],
    )
    return {"version": feast.__version__, "summary": json.loads(json.dumps(summary, default=str))}


if __name__ == "__main__":
    role, argument = sys.argv[1], json.loads(sys.argv[2])
    answer = {"register": _register, "materialize": _materialize}[role](argument)
    print(json.dumps(answer))
