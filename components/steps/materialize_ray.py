"""materialize on Feast's Ray engine (`materialize.engine: ray`): when one node is not enough.

The point-in-time join runs on Feast's Ray offline store, over the same feature repo, offline data
and online store as the single-node engine; the sets it writes are the single-node engine's, row
for row (tests/components/test_materialize_ray.py). The step keeps its one code path
(components/steps/materialize.py) and asks this module for the store's configuration and the
historical retrieval. The online write stays the single-node engine's (components/platform/
online_writer.py): Feast 0.67's Ray compute engine (`ray.engine`) materialized no rows into the
online store here (each batch's write error is logged in the Ray worker and dropped), and a write
that silently writes nothing must not be the platform's.

Where Ray runs:
- on a laptop and in tests, a local Ray of `materialize.ray.local_cpus` CPUs, started once per
  process (an already started Ray is used as it is);
- on the cluster, a KubeRay RayJob (rendered by pipelines/rayjob.py, handed to the task in
  `TEMPLATE_VARIABLE`): the step is its launcher, as the train step is a TrainJob's
  (components/steps/trainjob.py). It creates the RayJob with strict field validation and watches
  it; the RayJob's driver, on the Ray head, runs this module's `main` (the same materialize, its
  Ray engine attached to the cluster through RAY_ADDRESS, which KubeRay's job submission sets)
  with its outputs under a staging prefix of the artifact bucket; the step copies them to its own
  outputs and returns the summary the driver wrote.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from components.platform.buckets import PIPELINE_ARTIFACTS
from components.ray_settings import RaySettings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from kubernetes.client import ApiClient

    from components.config import MaterializeSettings

__all__ = [
    "ARGUMENTS",
    "BROADCAST_ALWAYS_MB",
    "GROUP",
    "PLURAL",
    "STEP",
    "TEMPLATE_VARIABLE",
    "VERSION",
    "engine_config",
    "entrypoint",
    "fill",
    "historical_features",
    "launch",
    "launched",
    "main",
    "start_ray",
    "terminal",
    "uses_ray",
]

STEP = "materialize"
TEMPLATE_VARIABLE = "MLOPS_RAYJOB_TEMPLATE"
"""The rendered RayJob (JSON) a cluster task of `materialize.engine: ray` carries; absent elsewhere."""
ARGUMENTS = "@MATERIALIZE_ARGUMENTS@"
"""The placeholder of the driver's arguments (JSON) in the rendered entrypoint: only the running step knows them."""
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
BROADCAST_ALWAYS_MB = 1 << 30
"""Feast's broadcast_join_threshold_mb, set past any view's size (a petabyte): see engine_config."""
ROW = "__mlops_entity_row"
"""The entity row's number, carried through the Ray join to match each result row back to its own."""
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TIMEOUT_SECONDS = 12 * 3600
SUCCEEDED, FAILED = ("Complete",), ("Failed", "ValidationFailed")
"""KubeRay's terminal jobDeploymentStatus values; Complete is a success only with jobStatus SUCCEEDED."""


def entrypoint() -> str:
    """The RayJob's entrypoint: this module's `main` on the Ray head, the arguments to be filled in."""
    return f"python -m components.steps.materialize_ray {ARGUMENTS}"


def start_ray(settings: RaySettings) -> None:
    """Attach to the Ray cluster the job runs in (RAY_ADDRESS, set by KubeRay's job submission), or
    start a local one of `settings.local_cpus` CPUs; an already started Ray is used as it is."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(
            num_cpus=settings.local_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )


def engine_config(config: dict[str, Any], settings: RaySettings) -> dict[str, Any]:
    """`config` (feature_store.yaml as a dict) with the Ray offline store in place of the single-node
    one: registry, online store and project stay as they are. Starts Ray."""
    from components.steps.ray_join import install

    install()  # Feast's keyed broadcast join falls back to a quadratic loop: components/steps/ray_join.py
    start_ray(settings)
    scratch = str(Path(str(config.get("registry", "."))).parent / "ray") if not _platform(config) else None
    # Always the broadcast join: Feast's windowed join (taken above broadcast_join_threshold_mb,
    # default 100 MB: about 2M rows of the fraud view) matches features only within one time
    # window and, on a known case, lost even those (tests/components/test_materialize_ray.py).
    # The view's feature rows must then fit a Ray worker's memory; past it the job fails loudly.
    offline: dict[str, Any] = {
        "type": "ray",
        "enable_ray_logging": False,
        "broadcast_join_threshold_mb": BROADCAST_ALWAYS_MB,
    }
    if scratch is not None:
        offline["storage_path"] = scratch
    return {**config, "offline_store": offline}


def _platform(config: dict[str, Any]) -> bool:
    registry = config.get("registry")
    return isinstance(registry, dict) and registry.get("registry_type") == "sql"


def uses_ray(store: FeatureStore) -> bool:
    """Whether `store` was opened with the Ray offline store (engine_config)."""
    return str(store.config.offline_store.type) == "ray"


def historical_features(store: FeatureStore, entity_df: pd.DataFrame, feature_service: str) -> pd.DataFrame:
    """The point-in-time join on Ray, each row with its entity row's own values and types.

    Feast's Ray offline store floors event times to the second and returns them in nanoseconds;
    the rows it returns are the entity rows, so each is matched back to its own (a row number
    carried through the join) and keeps its exact event time, as the single-node engine's does.
    The join itself is at second precision: docs/scale-out.md says when that matters."""
    import pyarrow as pa

    service = store.get_feature_service(feature_service)
    numbered = entity_df.assign(**{ROW: range(len(entity_df))})
    joined: pd.DataFrame = store.get_historical_features(entity_df=numbered, features=service).to_df()
    joined = joined.sort_values(ROW, kind="stable").reset_index(drop=True)
    if len(joined) != len(entity_df) or not (joined[ROW].to_numpy() == numbered[ROW].to_numpy()).all():
        raise ComponentError(STEP, f"the Ray retrieval returned {len(joined)} rows for {len(entity_df)} entity rows",
                             "check the feature views' join keys: each entity row must come back once")  # fmt: skip
    # Ray hands back pandas' nullable types (Int64); as Arrow reads the single-node engine's Parquet:
    # int64 without nulls, float64 with them, so both engines write the same column types
    joined = pa.Table.from_pandas(joined, preserve_index=False).replace_schema_metadata(None).to_pandas()
    rows = entity_df.reset_index(drop=True)
    for column in entity_df.columns:  # the entity row's own values, as given (its times not floored)
        joined[column] = rows[column]
    return joined.drop(columns=[ROW])


# --- on the cluster: the RayJob ----------------------------------------------------------------


def fill(template: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The RayJob with the driver's arguments in its entrypoint (one shell word of JSON)."""
    job: dict[str, Any] = json.loads(json.dumps(template))
    job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace(ARGUMENTS, shlex.quote(json.dumps(arguments)))
    return job


def terminal(job: dict[str, Any]) -> str | None:
    """`succeeded` or `failed` once KubeRay reports the RayJob finished, else None."""
    status = job.get("status") or {}
    deployment = status.get("jobDeploymentStatus")
    if deployment in SUCCEEDED:
        return "succeeded" if status.get("jobStatus") == "SUCCEEDED" else "failed"
    return "failed" if deployment in FAILED else None


def _namespace(job: dict[str, Any]) -> str:
    given = job.get("metadata", {}).get("namespace")
    if given:
        return str(given)
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    raise ComponentError(STEP, "no namespace for the RayJob", "run the step in a pod, or set the manifest's namespace")


def _api() -> ApiClient:
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi()


def _create(api: Any, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
    """Create it with strict field validation: a field KubeRay's CRD does not declare is refused."""
    from kubernetes.client.exceptions import ApiException

    try:
        created: dict[str, Any] = api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, job, field_validation="Strict"
        )
    except ApiException as error:
        try:
            message = json.loads(error.body).get("message") or error.body
        except (TypeError, ValueError, AttributeError):
            message = error.body
        problem = f"the API server refused the RayJob ({error.status} {error.reason}): {message}"
        if error.status is not None and 400 <= error.status < 500 and error.status != 429:
            raise ComponentError(
                STEP,
                problem,
                "render it with pipelines/rayjob.py and check the runner's RBAC on rayjobs.ray.io; "
                "`mlops lint FILE` validates a rendered RayJob",
            ) from error
        raise TransientError(STEP, problem, "retry: the API server was unavailable or throttled") from error
    return created


def launch(
    template: dict[str, Any],
    arguments: dict[str, Any],
    outputs: dict[str, str],
    *,
    api: Any = None,
    staging_root: str | None = None,
    poll_seconds: float = 10.0,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Create the RayJob, watch it, fetch its outputs; returns the summary its driver wrote.

    `arguments` are materialize's (components/steps/materialize.py), less its outputs; `outputs`
    maps each output argument (train_out, holdout_out, lineage_out) to the step's own path."""
    from components import artifacts

    api = api if api is not None else _api()
    namespace = _namespace(template)
    root = (staging_root or f"s3://{PIPELINE_ARTIFACTS}/{namespace}/rayjobs").rstrip("/")
    staging = f"{root}/{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    staged = {name: f"{staging}/{Path(path).name}" for name, path in outputs.items()}
    summary_uri = f"{staging}/summary.json"
    job = fill(template, {**arguments, **staged, "summary_out": summary_uri})
    job["metadata"]["namespace"] = namespace
    name = _create(api, namespace, job)["metadata"]["name"]
    print(f"RayJob {namespace}/{name}: {_workers(job)} workers, outputs staged at {staging}", flush=True)
    deadline = time.monotonic() + timeout_seconds
    while (state := terminal(api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))) is None:
        if time.monotonic() > deadline:
            raise TransientError(STEP, f"RayJob {namespace}/{name} did not finish in {timeout_seconds:.0f} s",
                                 f"check its pods: kubectl -n {namespace} describe rayjob {name}")  # fmt: skip
        time.sleep(poll_seconds)
    if state == "failed":
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        raise TransientError(
            STEP,
            f"RayJob {namespace}/{name} failed: {json.dumps(current.get('status', {}))[:1500]}",
            f"read its driver's log: kubectl -n {namespace} logs -l job-name={name}; and the head's: "
            f"kubectl -n {namespace} logs -l ray.io/node-type=head,ray.io/originated-from-cr-name={name}",
        )
    for output, path in outputs.items():
        artifacts.write_bytes(path, artifacts.read_bytes(staged[output]))
    summary: dict[str, Any] = artifacts.read_json(summary_uri)
    return summary


def launched(
    dataset: str,
    feature_repo: str,
    train_out: str,
    holdout_out: str,
    settings: MaterializeSettings,
    data_digest: str,
    offline_uri: str | None,
    lineage_out: str | None,
    logical_date: str,
) -> dict[str, Any] | None:
    """On the cluster under `engine: ray` (the task carries its rendered RayJob), the summary of
    the RayJob the step launched to materialize; elsewhere None, and the step runs in this process."""
    template = os.environ.get(TEMPLATE_VARIABLE)
    if settings.engine != "ray" or not template:
        return None
    arguments = {"dataset": dataset, "feature_repo": feature_repo, "settings": settings.model_dump(mode="json"),
                 "data_digest": data_digest, "offline_uri": offline_uri, "logical_date": logical_date}  # fmt: skip
    outputs = {"train_out": train_out, "holdout_out": holdout_out}
    if lineage_out is not None:
        outputs["lineage_out"] = lineage_out
    return launch(json.loads(template), arguments, outputs)


def _workers(job: dict[str, Any]) -> int:
    return sum(int(group.get("replicas", 0)) for group in job["spec"]["rayClusterSpec"].get("workerGroupSpecs", []))


def main(argv: list[str]) -> int:
    """The RayJob's driver: materialize with the arguments the launcher filled in, on this Ray
    cluster; its summary to `summary_out`, where the launcher reads it."""
    from components import artifacts
    from components.config import MaterializeSettings
    from components.steps.materialize import materialize

    if len(argv) != 1:
        raise ComponentError(STEP, f"the RayJob driver takes one argument, its JSON; got {len(argv)}",
                             "run it from the RayJob pipelines/rayjob.py renders, which fills it in")  # fmt: skip
    (text,) = argv
    arguments: dict[str, Any] = json.loads(text)
    summary_out = arguments.pop("summary_out")
    settings = MaterializeSettings.model_validate(arguments.pop("settings"))
    os.environ.pop(TEMPLATE_VARIABLE, None)  # the driver is the RayJob: it launches none
    positional = [arguments.pop(name) for name in ("dataset", "feature_repo", "train_out", "holdout_out")]
    summary = materialize(*positional, settings=settings, **arguments)
    artifacts.write_json(summary_out, summary)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
