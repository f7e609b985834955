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

REFUSAL = "is not the model evaluate scored"
"""How register refuses bytes other than the scored ones (components/register.py)."""


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


def _register(stack: Stack, tenant: Tenant, files: dict[str, str], out: Path) -> dict[str, Any]:
    """register as the tenant's pipeline runs it: the tenant's own environment, nobody else's."""
    from components.config import RegisterSettings
    from components.environment import temporary_env
    from components.register import register
    from devstack.tenants import tenant_environment

    with temporary_env(tenant_environment(stack, tenant)):
        return register(
            files["model"],
            files["metadata"],
            files["metrics"],
            str(out / "registration.json"),
            str(out / "card.md"),
            settings=RegisterSettings(model_name=model_name(tenant), experiment=tenant.name),
            pipeline="isolation-check",
        )


def scored_bytes(tenant: Tenant) -> bytes:
    return f"isolation-check: the model {tenant.name}'s evaluate scored\n".encode()


def own_gate(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the bytes evaluate scored register, in the tenant's own registry."""
    scored = scored_bytes(tenant)
    with tempfile.TemporaryDirectory(prefix="isolation-gate-") as folder:
        files = _write(Path(folder), "scored", scored, scored)
        summary = _register(stack, tenant, files, Path(folder) / "out")
    return f"registered the scored bytes as {summary['model_name']} version {summary['version']}"


def swapped_model(scene: Scene) -> str:
    """Bytes other than the scored ones, with metadata that matches them, beside evaluate's metrics."""
    from components.errors import ComponentError

    scored = scored_bytes(scene.attacker)
    with tempfile.TemporaryDirectory(prefix="isolation-gate-") as folder:
        files = _write(Path(folder), "swapped", scored + b"swapped after evaluate\n", scored)
        try:
            summary = _register(scene.stack, scene.attacker, files, Path(folder) / "out")
        except ComponentError as error:
            if REFUSAL in str(error):
                raise Denied("register refused bytes evaluate never scored") from error
            raise
    return f"registered bytes evaluate never scored as version {summary['version']}"


OWN = (("gate register the model evaluate scored", own_gate),)
PROBES = (("gate register a model swapped after evaluate", swapped_model),)
