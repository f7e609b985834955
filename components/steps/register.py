"""register: put the model in the MLflow registry exactly once per artifact.

The key is the sha256 of the model artifact's bytes, not a timestamp or run id: a retried
step, a re-run on the same data, or two runs racing each other all end on one model version.
1. A version tagged `artifact_sha256=<hash>` exists: reuse it (no new run, no new version).
2. Else log a run (model file, metadata, metrics, model card) and create the version with
   its tags in the same call, so the tag is committed with the version.
3. Then converge: list the versions with that hash; the lowest version wins, and a writer
   that lost the race deletes its own versions and its run, never a run the winner uses (a
   retried create can make two versions of one run). Versions are numbered in commit order,
   so every writer agrees on the winner. On the embedded store a file lock also serialises
   writers.
The alias `challenger` points at the winner (aliases, not the deprecated stages).
The run also keeps the model's features of its training set (`reference/training_set.parquet`):
the reference the drift step compares the data a champion scores with (components/steps/drift.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import artifacts
from components.config import RegisterSettings
from components.errors import ComponentError, TransientError, transient_reason
from components.handoffs import (
    HoldoutMetrics,
    Registration,
    TrainingMetadata,
    read_holdout_metrics,
    read_training_metadata,
)
from components.platform import model_registry, services
from components.platform.model_registry import HASH_TAG, MODEL_FILENAMES, client_at
from components.steps.model_card import render_model_card

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["REFERENCE_ARTIFACT", "STEP", "register"]

STEP = "register"
REFERENCE_ARTIFACT = "reference/training_set.parquet"
"""Where on a version's run the drift step finds the data the model was trained on."""


@contextlib.contextmanager
def _writer_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise writers that share a local sqlite store, from its creation on (two processes
    creating MLflow's tables at once collide); a tracking server needs no local lock."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    lock_path = database.parent / f".{database.name}.lock"
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _versions_with_hash(client: MlflowClient, model_name: str, sha: str) -> list[Any]:
    found = client.search_model_versions(f"name='{model_name}' and tags.{HASH_TAG}='{sha}'")
    return sorted(found, key=lambda version: int(version.version))


def _ensure_registered_model(client: MlflowClient, model_name: str, description: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name, description=description)
    except MlflowException as error:
        if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code) and "already exists" not in str(error):
            raise


def _flat_params(params: dict[str, Any]) -> dict[str, str]:
    return {key: json.dumps(value) if isinstance(value, list | dict) else str(value) for key, value in params.items()}


def _log_run(
    client: MlflowClient,
    experiment_id: str,
    model_path: Path,
    metadata: TrainingMetadata,
    metrics: HoldoutMetrics,
    tags: dict[str, str],
    pipeline: str,
    train_set: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> tuple[str, str, str]:
    """Log the run and its artifacts; returns (run_id, model source URI, model card URI)."""
    run = client.create_run(experiment_id, tags={**tags, "mlflow.runName": f"{pipeline}-{tags[HASH_TAG][:12]}"})
    run_id = run.info.run_id
    try:
        for key, value in _flat_params({**metadata["params"], "model_type": metadata["model_type"]}).items():
            client.log_param(run_id, key, value[:6000])
        for name, number in metrics.items():
            if isinstance(number, int | float) and not isinstance(number, bool) and name != "holdout_rows":
                client.log_metric(run_id, f"holdout_{name}", float(number))
        client.log_metric(run_id, "train_rows_per_second", float(metadata["rows_per_second"]))
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "model"
            bundle.mkdir()
            (bundle / MODEL_FILENAMES[metadata["format"]]).write_bytes(model_path.read_bytes())
            (bundle / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
            client.log_artifacts(run_id, str(bundle), "model")
            (Path(tmp) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
            client.log_artifact(run_id, str(Path(tmp) / "metrics.json"))
            if train_set is not None:
                _log_reference(client, run_id, train_set, metadata["features"], Path(tmp))
            if provenance and provenance.get("lineage"):
                from components import lineage

                lineage.record_on_run(
                    client,
                    run_id,
                    materialized=artifacts.read_json(provenance["lineage"]),
                    suite_path=provenance.get("suite_path"),
                    config=provenance.get("config"),
                    git_commit=tags.get("git_commit"),
                    model_sha256=tags[HASH_TAG],
                    scratch=Path(tmp),
                )
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    base = run.info.artifact_uri.rstrip("/")
    return run_id, f"{base}/model", f"{base}/model_card.md"


def _log_reference(client: MlflowClient, run_id: str, train_set: str, features: list[str], scratch: Path) -> None:
    """The training set's feature columns, the drift step's reference for this version."""
    from components.tabular import read_parquet, require_columns

    frame = read_parquet(STEP, train_set, "training set")
    require_columns(STEP, frame, features, "training set")
    folder = scratch / Path(REFERENCE_ARTIFACT).parent
    folder.mkdir(exist_ok=True)
    frame[features].to_parquet(folder / Path(REFERENCE_ARTIFACT).name, index=False)
    client.log_artifact(run_id, str(folder / Path(REFERENCE_ARTIFACT).name), str(Path(REFERENCE_ARTIFACT).parent))


def _require_scored(sha: str, scores: HoldoutMetrics) -> None:
    """The gate guards the bytes it scored: a model whose sha256 is not the `model_sha256` in
    evaluate's metrics (another train run's output, a file swapped after evaluate, a cached
    evaluate result of an earlier model) passed no gate, whatever its metadata says."""
    scored = scores.get("model_sha256")
    if scored != sha:
        raise ComponentError(
            STEP,
            f"the model to register (sha256 {sha}) is not the model evaluate scored "
            f"(sha256 {scored or 'not recorded'}): its gate result says nothing about these bytes",
            "rerun evaluate on this model (its metrics record the sha256 of the bytes scored), "
            "then register with that evaluate's metrics",
        )


def _gate_text(scores: HoldoutMetrics) -> str:
    gate = scores.get("gate") or {}
    return f"{gate.get('metric')} {gate.get('value')}, required {gate.get('direction')} {gate.get('threshold')}"


def register(
    model: str,
    model_metadata: str,
    metrics: str,
    registration_out: str,
    model_card_out: str,
    *,
    settings: RegisterSettings,
    pipeline: str = "unknown",
    git_commit: str | None = None,
    card: dict[str, Any] | None = None,
    train_set: str | None = None,
    lineage: str | None = None,
    suite_path: str | None = None,
    config: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
) -> dict[str, Any]:
    """Register the model artifact (idempotent by its sha256); write the registration JSON.

    `train_set`, the Parquet the model was trained on, is kept on the run as the drift step's
    reference (its feature columns only). `lineage` (materialize's record of the datasets and
    features), `suite_path` and `config` complete the run's lineage (components/lineage.py).

    Where MLflow is comes from the platform settings (components/platform/settings.py) unless a test
    passes `tracking_uri`/`artifact_root`; what to register as is the config's register section.
    """
    from mlflow.exceptions import MlflowException

    model_name, alias = settings.model_name, settings.alias
    uri = services.tracking_uri(STEP, tracking_uri)
    root = services.artifact_root(STEP, uri, artifact_root)
    meta = read_training_metadata(model_metadata)
    scores = read_holdout_metrics(metrics)
    if not scores.get("passed"):
        raise ComponentError(
            STEP,
            f"the model failed its gate ({_gate_text(scores)})",
            "only models that pass evaluate may be registered; the DAG routes them to notify",
        )
    with artifacts.fetched(model) as model_path:
        sha = artifacts.sha256_file(model_path)
        _require_scored(sha, scores)
        if meta.get("model_sha256") != sha:
            raise ComponentError(
                STEP,
                f"model bytes (sha256 {sha[:12]}) do not match the metadata ({str(meta.get('model_sha256'))[:12]})",
                "pass the metadata JSON written by the same train run as the model",
            )
        tags = {
            HASH_TAG: sha,
            "training_data_sha256": meta["training_data_sha256"],
            "pipeline": pipeline,
            "model_type": meta["model_type"],
            **({"git_commit": git_commit} if git_commit else {}),
            "mlflow.user": model_registry.who(),  # who trained it: production sign-off must be someone else
        }
        services.check_tracking_server(STEP, uri)
        try:
            with _writer_lock(uri):
                client = client_at(uri)
                outcome = _register_locked(
                    client,
                    uri,
                    root,
                    model_path,
                    meta,
                    scores,
                    tags,
                    model_name,
                    settings.experiment,
                    card or {},
                    pipeline,
                    git_commit,
                    alias,
                    train_set,
                    {"lineage": lineage, "suite_path": suite_path, "config": config},
                )
        except MlflowException as error:
            failure = TransientError if transient_reason(error) else ComponentError
            raise failure(
                STEP,
                f"MLflow at {uri} refused the registration: {error.message}",
                "check MLFLOW_TRACKING_URI, credentials and the server log",
            ) from error
        except OSError as error:
            raise TransientError(
                STEP,
                f"could not reach MLflow at {uri}: {error}",
                "check that the tracking server is up and MLFLOW_TRACKING_URI is right",
            ) from error
    version = client.get_model_version(model_name, outcome["version"])
    card_text = render_model_card(
        model_name=model_name,
        version=str(version.version),
        card=card or {},
        metadata=meta,
        metrics=scores,
        run_id=model_registry.run_id_of(version),
        pipeline=pipeline,
        git_commit=git_commit,
    )
    artifacts.write_bytes(model_card_out, card_text.encode())
    registration = _registration(version, bool(outcome["reused"]), meta, scores, sha, alias, uri)
    artifacts.write_json(registration_out, registration)
    return {
        "step": STEP,
        "model_name": model_name,
        "version": registration["version"],
        "reused": outcome["reused"],
        "run_id": version.run_id,
        "alias": alias,
    }


def _registration(
    version: Any, reused: bool, meta: TrainingMetadata, scores: HoldoutMetrics, sha: str, alias: str, uri: str
) -> Registration:
    """The registration JSON the next steps read (components/handoffs.py): the version, where its
    model file is and what it is, its gate and holdout metrics, and the features it takes."""
    return {
        "model_name": version.name,
        "version": int(version.version),
        "reused": reused,
        "run_id": version.run_id,
        "source": version.source,
        "model_file": MODEL_FILENAMES[meta["format"]],
        "model_format": meta["format"],
        "objective": meta.get("objective", "binary"),
        "model_card_uri": version.tags.get("model_card_uri", ""),
        "artifact_sha256": sha,
        "alias": alias,
        "tracking_uri": uri,
        "gate": scores["gate"],
        "holdout_metrics": {k: v for k, v in scores.items() if isinstance(v, float)},
        "features": meta["features"],
    }


def _register_locked(
    client: MlflowClient,
    uri: str,
    root: str | None,
    model_path: Path,
    meta: TrainingMetadata,
    scores: HoldoutMetrics,
    tags: dict[str, str],
    model_name: str,
    experiment: str,
    card: dict[str, Any],
    pipeline: str,
    git_commit: str | None,
    alias: str,
    train_set: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    _ensure_registered_model(client, model_name, f"Registered by the {pipeline} pipeline.")
    existing = _versions_with_hash(client, model_name, tags[HASH_TAG])
    if existing:
        winner = existing[0]
        client.set_registered_model_alias(model_name, alias, winner.version)
        return {"version": winner.version, "reused": True}
    experiment_id = model_registry.experiment_id(client, experiment, root)
    services.check_s3_artifacts(STEP, str(client.get_experiment(experiment_id).artifact_location))
    run_id, source, card_uri = _log_run(
        client, experiment_id, model_path, meta, scores, tags, pipeline, train_set, provenance
    )
    mine = client.create_model_version(
        model_name,
        source=source,
        run_id=run_id,
        tags={**tags, "model_card_uri": card_uri},
        description=f"{meta['model_type']} trained by {pipeline}",
    )
    contenders = _versions_with_hash(client, model_name, tags[HASH_TAG])
    winner = contenders[0] if contenders else mine
    # Remove only what this writer made and nobody keeps: its versions other than the winner (a
    # retried POST can create two from one call), and its run only if the winner is not on it.
    extras = {int(v.version) for v in contenders[1:] if v.run_id == run_id}
    if winner.run_id != run_id:
        extras.add(int(mine.version))
    for version in sorted(extras):
        client.delete_model_version(model_name, str(version))
    if winner.run_id != run_id:
        client.delete_run(run_id)
        client.set_registered_model_alias(model_name, alias, winner.version)
        return {"version": winner.version, "reused": True}
    mine = winner  # this run's first version, even when a retry made a second
    card_text = render_model_card(
        model_name=model_name,
        version=str(mine.version),
        card=card,
        metadata=meta,
        metrics=scores,
        run_id=run_id,
        pipeline=pipeline,
        git_commit=git_commit,
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model_card.md").write_text(card_text)
        client.log_artifact(run_id, str(Path(tmp) / "model_card.md"))
    client.set_registered_model_alias(model_name, alias, mine.version)
    return {"version": mine.version, "reused": False}
