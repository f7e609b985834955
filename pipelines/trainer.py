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

from components.config import PipelineConfig
from components.environment import IMAGE_VARIABLE
from pipelines.cluster import secret_environment
from pipelines.spec import PipelineSpec, Step

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


def _environment(cfg: PipelineConfig, image: str) -> list[dict[str, Any]]:
    """The step's environment, key by key (a TrainJob's trainer takes `env`, not `envFrom`): the
    platform settings from the namespace's ConfigMap, credentials from their Secrets."""
    from components.settings import CONFIGMAP, configmap_keys

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
    cfg: PipelineConfig, *, train_set: str, model_out: str, metadata_out: str, features: str
) -> list[str]:
    """The train step's command, as `mlops step train` runs it in a pod or on a laptop."""
    return [
        "mlops", "step", "train",
        "--train-set", train_set, "--model-out", model_out, "--metadata-out", metadata_out,
        "--features", features, "--label-column", cfg.materialize.label_column,
        "--settings", cfg.train.model_dump_json(),
    ]  # fmt: skip


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
) -> dict[str, Any]:
    """The TrainJob of `step` under `cfg.train.distributed`: N nodes of the declared resources.

    The paths are URIs every node can reach (the object store): a TrainJob's pods get no
    orchestrator artifacts. `features` is the comma-separated list materialize reported.
    """
    distributed = cfg.train.distributed
    if distributed is None:
        raise ValueError(f"{spec.name}: train.distributed is not set; the step trains in one pod")
    limits = {"cpu": step.resources.cpu, "memory": step.resources.memory}
    if step.resources.gpu:
        limits["nvidia.com/gpu"] = str(step.resources.gpu)
    command = train_command(cfg, train_set=train_set, model_out=model_out, metadata_out=metadata_out, features=features)
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
                "env": _environment(cfg, spec.image),
                "resourcesPerNode": {"limits": limits, "requests": limits},
            },
        },
    }


def launcher_template(spec: PipelineSpec, step: Step, cfg: PipelineConfig) -> dict[str, Any]:
    """The TrainJob a Kubeflow Pipelines train task launches (components/trainjob.py): named by
    the API server (`generateName`), in the task's own namespace, the URIs left as placeholders
    the running step fills."""
    from components import trainjob

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
    )
    metadata = job["metadata"]
    del metadata["name"], metadata["namespace"]
    metadata["generateName"] = f"{spec.name}-{step.name}-"
    return job
