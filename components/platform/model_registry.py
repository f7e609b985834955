"""Reading the MLflow registry back: a version's registration, its artifact, and the serving history.

register writes a version once; everything after it (serve, the canary lifecycle) starts from
the registry alone, so a laptop with MLFLOW_TRACKING_URI can act on any registered version
without the pipeline run's files.

MLflow keeps aliases but no record of which version served when (mlflow#2169). The history is
kept on the registered model as tags, one per event, `mlops.history.<UTC time>-<random>`, so
two writers never overwrite each other and the tag names sort in time order.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import artifacts
from components.errors import ComponentError
from components.handoffs import Registration
from components.platform import services
from components.platform.settings import apply_client_caps

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "CANARY",
    "CHALLENGER",
    "CHAMPION",
    "HASH_TAG",
    "HISTORY_PREFIX",
    "LOAD_SECONDS_TAG",
    "MODEL_FILENAMES",
    "STEP",
    "HistoryEntry",
    "aliases",
    "append_history",
    "client",
    "client_at",
    "experiment_id",
    "history",
    "load_registration",
    "model_names",
    "record_load_seconds",
    "registered_model",
    "resolve_version",
    "run_id_of",
    "tracking_uri",
    "who",
]

STEP = "registry"
HISTORY_PREFIX = "mlops.history."
LOAD_SECONDS_TAG = "mlops.serving.load_seconds"
CHAMPION = "champion"
CANARY = "canary"
CHALLENGER = "challenger"
HASH_TAG = "artifact_sha256"


class _ModelFilenames(dict[str, str]):
    """The artifact's file name in a registered version's model/ folder, by format: the first two
    formats keep the names their versions were registered under; every other format's is its model
    kind's `model_file` (components.model_kinds), so a kind a team brings registers too (issue 31)."""

    def __missing__(self, model_format: str) -> str:
        from components.model_kinds import kind_of_format

        return kind_of_format(model_format).model_file


MODEL_FILENAMES = _ModelFilenames({"xgboost_json": "model.json", "torchscript": "model.pt"})


def client_at(tracking_uri: str) -> MlflowClient:
    """An MLflow client of the tracking server and registry at `tracking_uri`, as given (`client`
    resolves it first); a local sqlite registry's folder is made."""
    from mlflow import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    apply_client_caps()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(client: MlflowClient, experiment: str, artifact_root: str | None) -> str:
    """The experiment's id, made (with its artifacts under `artifact_root`) when it is new; a
    concurrent maker's is taken."""
    existing = client.get_experiment_by_name(experiment)
    if existing is not None:
        return str(existing.experiment_id)
    try:
        location = f"{artifact_root.rstrip('/')}/{experiment}" if artifact_root else None
        return str(client.create_experiment(experiment, artifact_location=location))
    except Exception:
        existing = client.get_experiment_by_name(experiment)  # created concurrently
        if existing is None:
            raise
        return str(existing.experiment_id)


def tracking_uri(explicit: str | None = None) -> str:
    return services.tracking_uri(STEP, explicit)


def client(uri: str | None = None) -> MlflowClient:
    return client_at(tracking_uri(uri))


def registered_model(mlflow: MlflowClient, model: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_registered_model(model)
    except MlflowException as error:
        raise ComponentError(
            STEP,
            f"no registered model {model!r} in the registry at {tracking_uri()}",
            "check the model name and MLFLOW_TRACKING_URI; `mlops run <pipeline>` registers one",
        ) from error


def model_names(mlflow: MlflowClient) -> list[str]:
    """Every registered model this identity may see (a tenant's MLflow user: its own), sorted, all pages."""
    names: list[str] = []
    token: str | None = None
    while True:
        page = mlflow.search_registered_models(max_results=200, page_token=token)
        names.extend(registered.name for registered in page)
        token = page.token
        if not token:
            return sorted(names)


def resolve_version(mlflow: MlflowClient, model: str, *, version: int | None = None, alias: str | None = None) -> int:
    """The version number a --version or --alias names; errors list what exists."""
    from mlflow.exceptions import MlflowException

    registered = registered_model(mlflow, model)
    if version is not None:
        try:
            mlflow.get_model_version(model, str(version))
        except MlflowException as error:
            raise ComponentError(STEP, f"{model} has no version {version}", "pick one of its versions") from error
        return version
    name = alias or CHALLENGER
    aliases = dict(registered.aliases or {})
    if name not in aliases:
        known = ", ".join(f"{k}->v{v}" for k, v in sorted(aliases.items())) or "none"
        raise ComponentError(
            STEP, f"{model} has no alias {name!r} (aliases: {known})", "pass --version N or an existing --alias"
        )
    return int(aliases[name])


def aliases(mlflow: MlflowClient, model: str) -> dict[str, int]:
    return {name: int(number) for name, number in (mlflow.get_registered_model(model).aliases or {}).items()}


def run_id_of(version: ModelVersion) -> str:
    """The run that registered `version`: every version the register step makes has one."""
    if not version.run_id:
        raise ComponentError(
            STEP,
            f"{version.name} v{version.version} has no run: it was not registered by the register step",
            "register the model through its pipeline (`mlops run <pipeline>`), or pick another version",
        )
    return version.run_id


def _download_text(mlflow: MlflowClient, run_id: str, path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(mlflow.download_artifacts(run_id, path, tmp)).read_text()


def load_registration(mlflow: MlflowClient, model: str, version: int) -> tuple[Registration, bytes]:
    """The registration JSON register wrote for this version, rebuilt from the registry, and
    the model bytes (checked against the version's sha256 tag)."""
    record = mlflow.get_model_version(model, str(version))
    run_id = run_id_of(record)
    metadata = json.loads(_download_text(mlflow, run_id, "model/metadata.json"))
    scores = json.loads(_download_text(mlflow, run_id, "metrics.json"))
    model_file = MODEL_FILENAMES[metadata["format"]]
    with tempfile.TemporaryDirectory() as tmp:
        model_bytes = Path(mlflow.download_artifacts(run_id, f"model/{model_file}", tmp)).read_bytes()
    sha = artifacts.sha256_file_bytes(model_bytes)
    if sha != record.tags.get(HASH_TAG):
        raise ComponentError(
            STEP,
            f"{model} v{version}: the artifact's sha256 {sha[:12]} differs from the registered "
            f"{record.tags.get(HASH_TAG)}",
            "the artifact store was changed after registration; re-register from the pipeline",
        )
    registration: Registration = {
        "model_name": model,
        "version": int(version),
        "run_id": run_id,
        "source": record.source or "",
        "model_file": model_file,
        "model_format": metadata["format"],
        "objective": metadata.get("objective", "binary"),
        "model_card_uri": record.tags.get("model_card_uri", ""),
        "artifact_sha256": sha,
        "gate": scores["gate"],
        "holdout_metrics": {k: v for k, v in scores.items() if isinstance(v, float)},
        "features": metadata["features"],
        "load_seconds": float(record.tags[LOAD_SECONDS_TAG]) if LOAD_SECONDS_TAG in record.tags else None,
        "pipeline": record.tags.get("pipeline", ""),
    }
    return registration, model_bytes


def record_load_seconds(mlflow: MlflowClient, model: str, version: int, seconds: float) -> None:
    """The measured time from server start to model READY; promote sizes readiness probes by it."""
    mlflow.set_model_version_tag(model, str(version), LOAD_SECONDS_TAG, f"{seconds:.2f}")


def who() -> str:
    return os.environ.get("MLOPS_USER") or getpass.getuser()


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One serving event: which version took how much traffic, when, by whom and why."""

    action: str  # canary | promote | rollback
    to_version: int | None
    from_version: int | None
    traffic_percent: int  # share the to_version receives after the event
    who: str
    reason: str = ""
    namespace: str = ""
    applied: str = ""  # how it reached the cluster: kubernetes | gitops:<path>
    signed_off_by: str = ""  # production: who signed the version off (never its trainer)
    evidence: dict[str, Any] = field(default_factory=dict)  # what decided it: a canary analysis's figures
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @classmethod
    def from_json(cls, text: str) -> HistoryEntry:
        return cls(**json.loads(text))


def append_history(mlflow: MlflowClient, model: str, entry: HistoryEntry) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{HISTORY_PREFIX}{stamp}-{secrets.token_hex(3)}"
    mlflow.set_registered_model_tag(model, key, json.dumps(asdict(entry), sort_keys=True))
    return key


def history(mlflow: MlflowClient, model: str) -> list[HistoryEntry]:
    tags = registered_model(mlflow, model).tags or {}
    return [HistoryEntry.from_json(tags[key]) for key in sorted(k for k in tags if k.startswith(HISTORY_PREFIX))]
