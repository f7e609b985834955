"""Kubeflow Trainer v2: the runtimes distributed training runs on, and the TrainJob of a train step.

A pipeline whose config sets `train.distributed` trains on N nodes of a TrainJob instead of in
one pod. The TrainJob references the platform's ClusterTrainingRuntime of that runtime
(`torch-distributed` or `xgboost-distributed`, in manifests/base/trainer/, rendered here), runs
the component image and the train step's own command (under `torchrun` for torch, which reads
the `PET_*` variables the runtime injects; XGBoost workers read `DMLC_*`), and asks each node for
the resources the train step declares. Nothing here schedules anything: Trainer does.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import Parameter, Resource, Task
from hera.workflows import models as m

from components.config import PipelineConfig
from components.environment import IMAGE_VARIABLE
from components.platform.buckets import PIPELINE_ARTIFACTS
from components.steps.train_arguments import TrainArguments
from pipelines.cluster import secret_environment
from pipelines.resources import step_resources
from pipelines.spec import PipelineSpec, Step

__all__ = [
    "API_VERSION",
    "FRAMEWORK",
    "GPU_TOLERATION",
    "LAUNCHER",
    "RESTRICTED",
    "RUNTIMES",
    "TRAINJOB_FAILED",
    "TRAINJOB_SUCCEEDED",
    "TRAIN_COMPONENT",
    "argo_resource_template",
    "argo_task",
    "artifact_key",
    "cluster_training_runtime",
    "distributed_train",
    "launcher_template",
    "repository_uri",
    "step_environment",
    "stored_outputs",
    "train_command",
    "train_job",
    "trainjob_handoffs",
]

API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIMES = ("torch-distributed", "xgboost-distributed")
LAUNCHER = {"torch-distributed": ["torchrun", "--no-python"], "xgboost-distributed": []}
"""What the step's command runs under: torchrun starts one process per node with the
`PET_*` variables; an XGBoost worker is the command itself."""
FRAMEWORK = {"torch-distributed": "torch", "xgboost-distributed": "xgboost"}
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def cluster_training_runtime(runtime: str, image: str) -> dict[str, Any]:
    """The platform's ClusterTrainingRuntime of `runtime`: one replicated job of nodes running the
    component image, restricted, tolerating the GPU pool's taint."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    framework = FRAMEWORK[runtime]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterTrainingRuntime",
        "metadata": {
            "name": runtime,
            "labels": {"trainer.kubeflow.org/framework": framework, "app.kubernetes.io/part-of": "private-mlops"},
        },
        "spec": {
            "mlPolicy": {"numNodes": 1, framework: {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "template": {
                                "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "securityContext": {
                                                "runAsNonRoot": True,
                                                "seccompProfile": {"type": "RuntimeDefault"},
                                            },
                                            "tolerations": [GPU_TOLERATION],
                                            "containers": [
                                                {"name": "node", "image": image, "securityContext": RESTRICTED}
                                            ],
                                        }
                                    }
                                },
                            },
                        }
                    ]
                }
            },
        },
    }


def step_environment(cfg: PipelineConfig, image: str) -> list[dict[str, Any]]:
    """The step's environment, key by key (a TrainJob's trainer and a RayJob's pods take `env`, not
    `envFrom` here): the platform settings from the namespace's ConfigMap, credentials from their Secrets."""
    from components.platform.settings import CONFIGMAP, configmap_keys

    settings = [
        {"name": key, "valueFrom": {"configMapKeyRef": {"name": CONFIGMAP, "key": key, "optional": True}}}
        for key in sorted(configmap_keys())
    ]
    secrets = [
        {"name": ref.env, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
        for ref in secret_environment(cfg)
    ]
    return [*settings, *secrets, {"name": IMAGE_VARIABLE, "value": image}]


def train_command(
    cfg: PipelineConfig,
    *,
    train_set: str,
    model_out: str,
    metadata_out: str,
    features: str,
    train_set_sha256: str = "",
) -> list[str]:
    """The train step's command, as `mlops step train` runs it in a pod or on a laptop; with
    `train_set_sha256` (materialize's record of the set) each node refuses other bytes."""
    label, settings = cfg.materialize.label_column, cfg.train
    split = tuple(features.split(","))  # joined again as given: `features` may be a placeholder
    return TrainArguments(train_set, model_out, metadata_out, split, label, settings, train_set_sha256).command("mlops")


def train_job(
    spec: PipelineSpec,
    step: Step,
    cfg: PipelineConfig,
    *,
    name: str,
    namespace: str,
    train_set: str,
    model_out: str,
    metadata_out: str,
    features: str,
    train_set_sha256: str = "",
) -> dict[str, Any]:
    """The TrainJob of `step` under `cfg.train.distributed`: N nodes of the declared resources.

    The paths are URIs every node can reach (the object store): a TrainJob's pods get no
    orchestrator artifacts. `features` is the comma-separated list materialize reported.
    """
    distributed = cfg.train.distributed
    if distributed is None:
        raise ValueError(f"{spec.name}: train.distributed is not set; the step trains in one pod")
    limits = step_resources(step, cfg).limits()  # each node: the train step's sizes from config.yaml
    command = train_command(
        cfg,
        train_set=train_set,
        model_out=model_out,
        metadata_out=metadata_out,
        features=features,
        train_set_sha256=train_set_sha256,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "mlops.private-platform.io/pipeline": spec.name,
                "mlops.private-platform.io/team": cfg.cluster.team,
                "mlops.private-platform.io/step": step.name,
            },
        },
        "spec": {
            "runtimeRef": {
                "apiGroup": "trainer.kubeflow.org",
                "kind": "ClusterTrainingRuntime",
                "name": distributed.runtime,
            },
            "trainer": {
                "image": spec.image,
                "numNodes": distributed.workers,
                **({"numProcPerNode": 1} if distributed.runtime == "torch-distributed" else {}),
                "command": [*LAUNCHER[distributed.runtime], *command],
                "env": step_environment(cfg, spec.image),
                "resourcesPerNode": {"limits": limits, "requests": limits},
            },
        },
    }


def launcher_template(spec: PipelineSpec, step: Step, cfg: PipelineConfig) -> dict[str, Any]:
    """The TrainJob a Kubeflow Pipelines train task launches (components/steps/trainjob.py): named by
    the API server (`generateName`), in the task's own namespace, the URIs left as placeholders
    the running step fills."""
    from components.steps import trainjob

    job = train_job(
        spec,
        step,
        cfg,
        name="",
        namespace="",
        train_set=trainjob.TRAIN_SET,
        model_out=trainjob.MODEL_OUT,
        metadata_out=trainjob.METADATA_OUT,
        features=trainjob.FEATURES,
        train_set_sha256=trainjob.TRAIN_SET_SHA256,
    )
    metadata = job["metadata"]
    del metadata["name"], metadata["namespace"]
    metadata["generateName"] = f"{spec.name}-{step.name}-"
    return job


TRAIN_COMPONENT = "components.steps.train:train"
TRAINJOB_SUCCEEDED = "status.jobsStatus.0.succeeded > 0"
TRAINJOB_FAILED = "status.jobsStatus.0.failed > 0"
"""The TrainJob's one replicated job (`node`, the platform's runtimes have no other) finished or
failed; Argo's conditions are label selectors over JSON paths, so no query into `conditions`."""


def distributed_train(cfg: PipelineConfig, step: Step) -> bool:
    """Whether `step` trains as a Kubeflow Trainer TrainJob (train.distributed is set)."""
    return step.component == TRAIN_COMPONENT and cfg.train.distributed is not None


def artifact_key(path: str) -> str:
    """A key in the workflow's artifact repository, where the tenant's own key pair reaches."""
    return f"{{{{workflow.namespace}}}}/{path}"


def repository_uri(key: str) -> str:
    return f"s3://{PIPELINE_ARTIFACTS}/{key}"


def trainjob_handoffs(spec: PipelineSpec, cfg: PipelineConfig, keys: dict[str, str | None]) -> dict[str, str]:
    """What a TrainJob's nodes read and write, by `step.output`, at its key in the artifact
    repository. A TrainJob's pods get no orchestrator artifacts: the training set is stored
    unpacked at a key both sides derive (addressed by materialize's cache key when it has one, so a
    memoized materialize's set is found where an earlier run left it), and rank 0 writes the model
    and its metadata where the steps after it fetch them. As seen from the DAG's tasks."""
    found: dict[str, str] = {}
    for step in spec.steps:
        if not distributed_train(cfg, step):
            continue
        source = step.inputs["train_set"].split(".")[0]
        where = f"sets/{keys[source]}" if keys.get(source) else f"{{{{workflow.name}}}}/{source}"
        found[step.inputs["train_set"]] = artifact_key(f"{where}/train_set.parquet")
        found[f"{step.name}.model"] = artifact_key(f"{{{{workflow.name}}}}/{step.name}/model")
        found[f"{step.name}.metadata"] = artifact_key(f"{{{{workflow.name}}}}/{step.name}/metadata.json")
    return found


def stored_outputs(step: Step, handoffs: dict[str, str], memoized: bool) -> dict[str, str]:
    """`step`'s output artifacts a TrainJob reads, by name, at their key as seen from inside the
    step's own template (its cache key is an input parameter there)."""
    stored = {}
    for reference in handoffs:
        source, output = reference.split(".")
        if source == step.name:
            where = "sets/{{inputs.parameters.cache-key}}" if memoized else f"{{{{workflow.name}}}}/{source}"
            stored[output] = artifact_key(f"{where}/{output}.parquet")
    return stored


def argo_resource_template(
    spec: PipelineSpec, step: Step, cfg: PipelineConfig, handed: dict[str, str], retry: m.RetryStrategy
) -> Resource:
    """The train step as a TrainJob: created by an Argo resource template, watched until its nodes
    finish; `retry` is the step's retryStrategy (pipelines/argo.py)."""
    import yaml

    job = train_job(
        spec,
        step,
        cfg,
        name="",
        namespace="{{workflow.namespace}}",
        train_set="{{inputs.parameters.train-set}}",
        model_out=repository_uri(handed[f"{step.name}.model"]),
        metadata_out=repository_uri(handed[f"{step.name}.metadata"]),
        features="{{inputs.parameters.features}}",
        train_set_sha256="{{inputs.parameters.train-set-sha256}}",
    )
    metadata = job["metadata"]
    metadata.pop("name")
    metadata["generateName"] = "{{workflow.name}}-" + step.name + "-"  # a retry creates a new one
    return Resource(
        name=step.name,
        action="create",
        set_owner_reference=True,
        success_condition=TRAINJOB_SUCCEEDED,
        failure_condition=TRAINJOB_FAILED,
        manifest=yaml.safe_dump(job, sort_keys=False),
        inputs=[Parameter(name="train-set"), Parameter(name="features"), Parameter(name="train-set-sha256")],
        retry_strategy=retry,
    )


def argo_task(step: Step, template: Resource, handed: dict[str, str], *, depends: str | None, when: str | None) -> Task:
    """The DAG task that runs the TrainJob's resource template, `depends`/`when` as pipelines/argo.py
    writes them for every task."""

    def output(name: str) -> str:
        source, field = step.inputs[name].split(".")
        return f"{{{{tasks.{source}.outputs.parameters.{field}}}}}"

    arguments = [
        Parameter(name="train-set", value=repository_uri(handed[step.inputs["train_set"]])),
        Parameter(name="features", value=output("features")),
        # materialize's record of the set: the nodes refuse a set rewritten at its fixed key
        Parameter(name="train-set-sha256", value=output("train_set_sha256")),
    ]
    return Task(name=step.name, template=template, arguments=arguments, depends=depends, when=when)
