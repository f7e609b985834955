"""The gate surface of `mlops isolation-check`: can a model nobody evaluated be registered?

Issue 29, "a model that nobody evaluated can be registered": register compared the model with
train's metadata only, never with the `model_sha256` evaluate scored, so bytes swapped in after
evaluate (a rerun's model beside a cached evaluate result, a file rewritten at its key) were
registered on another model's gate. The positive control: the tenant registers, in its own
experiment and under its own model name, the bytes its evaluate metrics name (OK). The probe: the
same tenant hands register other bytes, with metadata that matches them, beside those metrics:
DENIED when register refuses them, LEAK when a version is made.

The files are a few bytes written here, not a trained model: register reads the metadata and
hashes the file, it does not load it. Registration is idempotent by the sha256, so the control
reuses its version on every later check.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import Denied

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "model_name"]

REGISTER = ("-m", "mlops.cli", "step", "register")
"""How the row runs register: the pipeline's own step command, in a process of its own."""

REFUSAL = "is not the model evaluate scored"
"""How register refuses bytes other than the scored ones (components/steps/register.py)."""


def model_name(tenant: Tenant) -> str:
    """The tenant's own model the gate rows register under (named in its namespace)."""
    return f"{tenant.name}-gate-check"


def _write(folder: Path, name: str, model: bytes, scored: bytes) -> dict[str, str]:
    """A model file, metadata that matches it, and evaluate metrics naming the `scored` bytes."""
    import json

    sha = hashlib.sha256(model).hexdigest()
    metadata = {
        "model_type": "xgboost", "objective": "binary", "format": "xgboost_json", "features": ["x"],
        "label": "y", "params": {}, "seed": 0, "device": "cpu", "training_rows": 1, "positive_rate": 0.5,
        "label_mean": 0.5, "training_data_sha256": "0" * 64, "data_window": None, "model_sha256": sha,
        "train_seconds": 1.0, "rows_per_second": 1.0, "row_passes_per_second": 1.0, "passes": 1, "python": "3",
    }  # fmt: skip
    gate = {"metric": "roc_auc", "value": 0.9, "threshold": 0.5, "direction": ">=", "passed": True}
    metrics = {"objective": "binary", "holdout_rows": 1, "gate": gate, "passed": True, "roc_auc": 0.9,
               "model_sha256": hashlib.sha256(scored).hexdigest(), "holdout_data_sha256": "0" * 64}  # fmt: skip
    paths = {key: folder / name / key for key in ("model", "metadata", "metrics")}
    paths["model"].parent.mkdir(parents=True)
    paths["model"].write_bytes(model)
    paths["metadata"].write_text(json.dumps(metadata))
    paths["metrics"].write_text(json.dumps(metrics))
    return {key: str(path) for key, path in paths.items()}


def _register(stack: Stack, tenant: Tenant, files: dict[str, str], out: Path) -> tuple[int, str]:
    """register as the tenant's pipeline step runs it: `mlops step register` in a process of its
    own whose environment is the tenant's and nobody else's (as in the tenant's pod). In-process,
    MLflow's cached S3 client (keyed without the credentials) kept whichever identity first used
    the endpoint, so the check's answer depended on what ran before it. Returns (exit code, output)."""
    import json
    import os
    import subprocess
    import sys

    from components.config import RegisterSettings
    from devstack.tenants import tenant_process_environment

    env = tenant_process_environment(stack, tenant, os.environ)
    settings = RegisterSettings(model_name=model_name(tenant), experiment=tenant.name)
    done = subprocess.run(
        [sys.executable, *REGISTER, "--model", files["model"],
         "--model-metadata", files["metadata"], "--metrics", files["metrics"],
         "--registration-out", str(out / "registration.json"), "--model-card-out", str(out / "card.md"),
         "--settings", json.dumps(settings.model_dump(mode="json")), "--pipeline", "isolation-check"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _registered(out: Path) -> dict[str, Any]:
    import json

    summary: dict[str, Any] = json.loads((out / "registration.json").read_text())
    return summary


def scored_bytes(tenant: Tenant) -> bytes:
    return f"isolation-check: the model {tenant.name}'s evaluate scored\n".encode()


def own_gate(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the bytes evaluate scored register, in the tenant's own registry."""
    scored = scored_bytes(tenant)
    with tempfile.TemporaryDirectory(prefix="isolation-gate-") as folder:
        files = _write(Path(folder), "scored", scored, scored)
        out = Path(folder) / "out"
        code, output = _register(stack, tenant, files, out)
        if code != 0:
            raise RuntimeError(f"register exited {code}: {output.strip()[-300:]}")
        summary = _registered(out)
    return f"registered the scored bytes as {summary['model_name']} version {summary['version']}"


def swapped_model(scene: Scene) -> str:
    """Bytes other than the scored ones, with metadata that matches them, beside evaluate's metrics."""
    scored = scored_bytes(scene.attacker)
    with tempfile.TemporaryDirectory(prefix="isolation-gate-") as folder:
        files = _write(Path(folder), "swapped", scored + b"swapped after evaluate\n", scored)
        out = Path(folder) / "out"
        code, output = _register(scene.stack, scene.attacker, files, out)
        if code == 2 and REFUSAL in output:
            raise Denied("register refused bytes evaluate never scored (exit 2)")
        if code != 0:
            raise RuntimeError(f"register exited {code}: {output.strip()[-300:]}")
        summary = _registered(out)
    return f"registered bytes evaluate never scored as version {summary['version']}"


OWN = (("gate register the model evaluate scored", own_gate),)
PROBES = (("gate register a model swapped after evaluate", swapped_model),)
