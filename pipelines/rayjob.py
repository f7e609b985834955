"""KubeRay: the RayJob of a materialize step under `materialize.engine: ray`.

One head and `materialize.ray.workers` workers, every pod the component image (Feast and Ray are
in it), restricted as every platform pod is (manifests/policies/pod-security.yaml), each worker
and the head sized as the materialize step is (`resources.materialize`: one declaration sizes
both), with the step's environment (the namespace's ConfigMap and Secrets, as a TrainJob's nodes
get it). KubeRay's K8s-Job submitter, from the template rendered here, runs the driver
(components/steps/materialize_ray.py: main) on the head; the head has no CPUs for Ray tasks, so
the join and the online write run on the workers.

The pods KubeRay makes carry `NODE_LABELS` (head and workers) and the submitter `SUBMITTER_LABELS`:
manifests/tenants/network/network-policies.yaml selects them (allow-ray-nodes,
allow-ray-submitter), manifests/base/network/required-flows.yaml's `ray` rows are their flows.
Nothing here schedules anything: KubeRay does.
"""

from __future__ import annotations

from typing import Any

from components.config import PipelineConfig
from components.steps import materialize_ray
from pipelines.resources import step_resources
from pipelines.spec import PipelineSpec, Step
from pipelines.trainer import RESTRICTED, step_environment

__all__ = [
    "API_VERSION",
    "DASHBOARD_PORT",
    "GCS_PORT",
    "MATERIALIZE_COMPONENT",
    "NODE_LABELS",
    "SUBMITTER_LABELS",
    "WORKER_GROUP",
    "launcher_environment",
    "launcher_template",
    "ray_job",
    "ray_materialize",
]

API_VERSION = f"{materialize_ray.GROUP}/{materialize_ray.VERSION}"
MATERIALIZE_COMPONENT = "components.steps.materialize:materialize"
WORKER_GROUP = "workers"
GCS_PORT, DASHBOARD_PORT = 6379, 8265
"""Where Ray's nodes meet (the head's GCS) and where the submitter sends the job (the dashboard)."""
NODE_LABELS = {"ray.io/is-ray-node": "yes"}
"""What KubeRay labels each pod of a RayCluster with (beside ray.io/cluster, node-type and group)."""
SUBMITTER_LABELS = {"mlops.private-platform.io/ray-submitter": "true"}
"""The submitter pod's labels: from the template rendered here."""
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
SHM = "dshm"
"""Ray's object store lives in /dev/shm: a memory-backed emptyDir, sized as the pod's memory."""


def ray_materialize(cfg: PipelineConfig, step: Step) -> bool:
    """Whether `step` is a materialize step that runs on a RayJob."""
    return step.component == MATERIALIZE_COMPONENT and cfg.materialize.engine == "ray"


def _pod(
    container: str, image: str, env: list[dict[str, Any]], limits: dict[str, str], labels: dict[str, str]
) -> dict[str, Any]:
    """A Ray node's pod template: the component image, restricted, its /dev/shm in memory."""
    return {
        "metadata": {"labels": labels},
        "spec": {
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": container,
                    "image": image,
                    "securityContext": RESTRICTED,
                    "env": env,
                    "resources": {"limits": limits, "requests": limits},
                    "volumeMounts": [{"name": SHM, "mountPath": "/dev/shm"}],
                }
            ],
            "volumes": [{"name": SHM, "emptyDir": {"medium": "Memory", **_size(limits)}}],
        },
    }


def _size(limits: dict[str, str]) -> dict[str, str]:
    return {"sizeLimit": limits["memory"]} if "memory" in limits else {}


def ray_job(spec: PipelineSpec, step: Step, cfg: PipelineConfig, *, name: str, namespace: str) -> dict[str, Any]:
    """The RayJob of `step` under `materialize.engine: ray`: a head and N workers of the step's sizes."""
    if not ray_materialize(cfg, step):
        raise ValueError(f"{spec.name}: step {step.name} does not run on Ray (materialize.engine: ray)")
    limits = step_resources(step, cfg).limits()
    env = step_environment(cfg, spec.image)
    labels = {
        "mlops.private-platform.io/pipeline": spec.name,
        "mlops.private-platform.io/team": cfg.cluster.team,
        "mlops.private-platform.io/step": step.name,
    }
    submitter = _pod("submitter", spec.image, env, {"cpu": "500m", "memory": "1Gi"}, {**labels, **SUBMITTER_LABELS})
    submitter["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "entrypoint": materialize_ray.entrypoint(),
            "submissionMode": "K8sJobMode",
            "submitterPodTemplate": submitter,
            "submitterConfig": {"backoffLimit": 0},
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "backoffLimit": 0,
            "rayClusterSpec": {
                "headGroupSpec": {
                    # no CPUs for Ray tasks on the head: the driver runs there, the work on the workers
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": _pod("ray-head", spec.image, env, limits, labels),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": WORKER_GROUP,
                        "replicas": cfg.materialize.ray.workers,
                        "minReplicas": cfg.materialize.ray.workers,
                        "maxReplicas": cfg.materialize.ray.workers,
                        "rayStartParams": {},
                        "template": _pod("ray-worker", spec.image, env, limits, labels),
                    }
                ],
            },
        },
    }


def launcher_template(spec: PipelineSpec, step: Step, cfg: PipelineConfig) -> dict[str, Any]:
    """The RayJob a materialize task launches (components/steps/materialize_ray.py: launch): named
    by the API server, in the task's own namespace, its driver's arguments filled in by the step."""
    job = ray_job(spec, step, cfg, name="", namespace="")
    metadata = job["metadata"]
    del metadata["name"], metadata["namespace"]
    metadata["generateName"] = f"{spec.name}-{step.name}-"
    return job


def launcher_environment(spec: PipelineSpec, step: Step, cfg: PipelineConfig) -> dict[str, str]:
    """What a task of `step` carries so that it launches its RayJob (Argo and Kubeflow Pipelines
    alike: components/steps/materialize_ray.py reads it); nothing for a step that does not run on Ray."""
    import json

    if not ray_materialize(cfg, step):
        return {}
    return {materialize_ray.TEMPLATE_VARIABLE: json.dumps(launcher_template(spec, step, cfg), sort_keys=True)}
