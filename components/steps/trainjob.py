"""A TrainJob launched from inside the train step: how Kubeflow Pipelines runs a distributed train.

Argo creates the TrainJob itself (a resource template, pipelines/argo.py); a KFP IR has no such
template, so there the train step is the launcher, as KFP's own launcher components are:

    stage the training set -> create the TrainJob -> watch its node job -> fetch model + metadata

The TrainJob's manifest comes rendered (pipelines/trainer.py, through `TEMPLATE_VARIABLE`), with
placeholders for the URIs, which only the running step knows. Its nodes get no KFP artifacts, so
the set is staged in the artifact repository's bucket under the tenant's prefix (the namespace),
rank 0 writes model and metadata beside it, and the step fetches them as its own outputs, after
checking the model's bytes against the sha256 its metadata records.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from components.platform.buckets import PIPELINE_ARTIFACTS

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "FEATURES",
    "METADATA_OUT",
    "MODEL_OUT",
    "NAMESPACE_FILE",
    "STEP",
    "TEMPLATE_VARIABLE",
    "TIMEOUT_SECONDS",
    "TRAIN_SET",
    "TRAIN_SET_SHA256",
    "fill",
    "launch",
    "node_job",
    "terminal",
]

STEP = "train"
TEMPLATE_VARIABLE = "MLOPS_TRAINJOB_TEMPLATE"
"""The rendered TrainJob (JSON) a Kubeflow Pipelines train task carries; absent elsewhere."""
TRAIN_SET, MODEL_OUT, METADATA_OUT, FEATURES = "@TRAIN_SET@", "@MODEL_OUT@", "@METADATA_OUT@", "@FEATURES@"
TRAIN_SET_SHA256 = "@TRAIN_SET_SHA256@"
"""The digest materialize's lineage record holds for the set: each node refuses other bytes."""
GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TIMEOUT_SECONDS = 24 * 3600


def fill(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The manifest with each placeholder of its trainer command replaced."""
    job: dict[str, Any] = json.loads(json.dumps(template))
    trainer = job["spec"]["trainer"]
    trainer["command"] = [values.get(part, part) for part in trainer["command"]]
    return job


def _namespace(job: dict[str, Any]) -> str:
    given = job.get("metadata", {}).get("namespace")
    if given:
        return str(given)
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    raise ComponentError(
        STEP, "no namespace for the TrainJob", "run the step in a pod, or set the manifest's namespace"
    )


def _api() -> ApiClient:
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi()


def terminal(job: dict[str, Any]) -> dict[str, Any] | None:
    """The TrainJob's terminal condition, Complete or Failed (Trainer copies JobSet's), once True."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            found: dict[str, Any] = condition
            return found
    return None


def _create(api: ApiClient, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
    """Create it with strict field validation: a field the Trainer CRD does not declare is refused,
    not pruned without a word (a misspelt setting would silently train with the runtime's default)."""
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
        problem = f"the API server refused the TrainJob ({error.status} {error.reason}): {message}"
        if error.status is not None and 400 <= error.status < 500 and error.status != 429:
            raise ComponentError(
                STEP,
                problem,
                "render it from the platform's ClusterTrainingRuntimes (pipelines/trainer.py) and "
                "check the runner's RBAC on trainjobs; `mlops lint FILE` validates a rendered TrainJob",
            ) from error
        raise TransientError(STEP, problem, "retry: the API server was unavailable or throttled") from error
    return created


def node_job(job: dict[str, Any]) -> dict[str, Any]:
    """The status of the TrainJob's one replicated job (`node`; the platform's runtimes have no other)."""
    statuses = job.get("status", {}).get("jobsStatus") or []
    return next((s for s in statuses if s.get("name") == "node"), statuses[0] if statuses else {})


def launch(
    template: dict[str, Any],
    train_set: str,
    model_out: str,
    metadata_out: str,
    features: list[str],
    *,
    api: ApiClient | None = None,
    staging_root: str | None = None,
    poll_seconds: float = 10.0,
    timeout_seconds: float = TIMEOUT_SECONDS,
    train_set_sha256: str = "",
) -> dict[str, Any]:
    """Stage, create, watch, fetch; returns the metadata rank 0 wrote. The nodes check the staged
    set against `train_set_sha256` (materialize's record), as the step checked its own input."""
    from components import artifacts  # here: `mlops compile` imports this module, never pandas

    api = api if api is not None else _api()
    namespace = _namespace(template)
    root = (staging_root or f"s3://{PIPELINE_ARTIFACTS}/{namespace}/trainjobs").rstrip("/")
    staging = f"{root}/{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    # the step's input, a local file: copied, never held in memory (the set a TrainJob exists for is large)
    with artifacts.atomic_path(f"{staging}/train_set.parquet", suffix=".parquet") as copy:
        shutil.copyfile(train_set, copy)
    uris = {TRAIN_SET: f"{staging}/train_set.parquet", MODEL_OUT: f"{staging}/model",
            METADATA_OUT: f"{staging}/metadata.json", FEATURES: ",".join(features),
            TRAIN_SET_SHA256: train_set_sha256 or artifacts.sha256_file(train_set)}  # fmt: skip
    job = fill(template, uris)
    job["metadata"]["namespace"] = namespace
    created = _create(api, namespace, job)
    name = created["metadata"]["name"]
    print(f"TrainJob {namespace}/{name}: {job['spec']['trainer']['numNodes']} nodes, staged at {staging}", flush=True)
    deadline = time.monotonic() + timeout_seconds
    while True:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status, condition = node_job(current), terminal(current)
        if (condition or {}).get("type") == "Failed" or (condition is None and int(status.get("failed") or 0) > 0):
            raise TransientError(
                STEP,
                f"TrainJob {namespace}/{name} failed: {json.dumps(current.get('status', {}))[:1500]}",
                f"read its nodes' logs: kubectl -n {namespace} logs -l trainer.kubeflow.org/trainjob-name={name}",
            )
        if (condition or {}).get("type") == "Complete" or (condition is None and int(status.get("succeeded") or 0) > 0):
            break
        if time.monotonic() > deadline:
            raise TransientError(STEP, f"TrainJob {namespace}/{name} did not finish in {timeout_seconds:.0f} s",
                                 "check its nodes: pending on GPUs? kubectl describe trainjob")  # fmt: skip
        time.sleep(poll_seconds)
    model, metadata = artifacts.read_bytes(uris[MODEL_OUT]), artifacts.read_json(uris[METADATA_OUT])
    if artifacts.sha256_file_bytes(model) != metadata.get("model_sha256"):
        raise ComponentError(
            STEP,
            f"the model TrainJob {name} wrote does not match the sha256 its metadata records",
            "a node wrote over another's output: check that only rank 0 writes (components/steps/train.py)",
        )
    artifacts.write_bytes(model_out, model)
    artifacts.write_json(metadata_out, metadata)
    result: dict[str, Any] = metadata
    return result
