"""Each step's sizes as a run gets them: the declaration's, overridden by config.yaml's `resources`,
and refused before anything is rendered when the cluster would refuse or never schedule them.

Three checks, each derived from where its fact lives:

- the step names: the declaration's spec (an entry for a step the pipeline does not have is a typo);
- the GPU-memory admission policy (manifests/policies/gpu-memory-limit.yaml): a container asking
  for a resource under one of the Constraint's `gpuResourcePrefixes` must set a memory limit;
- the tenant's quota (manifests/tenants/<namespace>/quota.yaml, rendered by `make golden`): a pod
  asking for more than its namespace's whole budget of a resource is never admitted.

Every renderer (pipelines/argo.py, kfp.py, trainer.py, katib.py) takes the sizes from here, and
`mlops lint --pipeline` runs the same checks. An installation without the manifests (a team's
image) skips the two cluster checks: the cluster still enforces them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.config import PipelineConfig
from components.errors import ComponentError
from components.resource_settings import EXAMPLES, quantity
from pipelines.spec import GPU_RESOURCE, PipelineSpec, Resources, Step

__all__ = [
    "GPU_POLICY",
    "OOM_KILLED",
    "TENANTS",
    "check_gpu_policy",
    "check_quota",
    "gpu_resource_prefixes",
    "killed_for_memory",
    "memory_advice",
    "namespace_quota",
    "sized",
    "step_resources",
]

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
GPU_POLICY = MANIFESTS / "policies" / "gpu-memory-limit.yaml"
TENANTS = MANIFESTS / "tenants"
POLICY_KIND = "K8sGpuMemoryLimit"


OOM_KILLED = "OOMKilled"
"""The reason Kubernetes gives a container killed at its memory limit: Argo's node message reads
`OOMKilled (exit code 137)`, and Kubeflow Pipelines' task error carries it. Not transient: the same
limit fails the same way, so Argo's retry expression (pipelines/argo.py) does not retry it."""
_OOM = re.compile(rf"\b{OOM_KILLED}\b")


def killed_for_memory(message: str | None) -> bool:
    """Whether a failed pod's message says it was killed for memory: Kubernetes' OOMKilled reason only.
    Exit 137 alone is any SIGKILL (a failed liveness probe, preemption, `kill -9`), which Argo reports
    as `Error (exit code 137)` and the retry expression retries: not a memory limit to raise."""
    return bool(message) and _OOM.search(message or "") is not None


def memory_advice(step: str, limit: str | None) -> str:
    """What a step killed for memory is reported as, naming the setting to raise."""
    return f"killed for memory (limit {limit or 'unknown'}): raise resources.{step}.memory in config.yaml"


def _refuse(problem: str, fix: str) -> ComponentError:
    return ComponentError("config", problem, fix)


def step_resources(step: Step, cfg: PipelineConfig) -> Resources:
    """`step`'s declared sizes with its `resources.<step>` entry in config.yaml applied."""
    entry = cfg.resources.get(step.name)
    return dataclasses.replace(step.resources, **entry.overrides()) if entry else step.resources


def gpu_resource_prefixes(policy: Path = GPU_POLICY) -> tuple[str, ...] | None:
    """The resource names (prefixes) the GPU-memory Constraint treats as GPUs; None without the policy."""
    if not policy.is_file():
        return None
    for document in yaml.safe_load_all(policy.read_text()):
        if isinstance(document, dict) and document.get("kind") == POLICY_KIND:
            prefixes = document.get("spec", {}).get("parameters", {}).get("gpuResourcePrefixes", [])
            return tuple(str(prefix) for prefix in prefixes)
    return None


def check_gpu_policy(step: str, resources: Resources, policy: Path = GPU_POLICY) -> None:
    """Refuse what the GPU-memory admission policy refuses: a GPU container with no memory limit."""
    prefixes = gpu_resource_prefixes(policy)
    if prefixes is None or resources.memory is not None:
        return
    for name in resources.limits():
        if any(name.startswith(prefix) for prefix in prefixes):
            raise _refuse(
                f"resources.{step} asks for {name} but sets no memory, and the admission policy "
                f"{policy.name} refuses a GPU container without a memory limit",
                f"set resources.{step}.memory in config.yaml, for example {EXAMPLES['memory']}",
            )


def namespace_quota(namespace: str, tenants: Path = TENANTS) -> dict[str, str] | None:
    """The hard limits of the ResourceQuota rendered for `namespace`; None when none is rendered."""
    path = tenants / namespace / "quota.yaml"
    if not path.is_file():
        return None
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and document.get("kind") == "ResourceQuota":
            hard: dict[str, Any] = document.get("spec", {}).get("hard", {})
            return {str(key): str(value) for key, value in hard.items()}
    return None


# quota key -> the pod's resource it bounds: a pod's requests equal its limits (Resources.limits)
_BOUNDED = {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "ephemeral-storage"}
_SETTING = {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "ephemeral_storage", GPU_RESOURCE: "gpu"}


def _bounded_resource(key: str) -> str:
    for prefix in ("requests.", "limits."):
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    return _BOUNDED.get(key, "")


def check_quota(step: str, resources: Resources, namespace: str, quota: Mapping[str, str], pods: int = 1) -> None:
    """Refuse a step that asks for more of a resource than its namespace's whole quota allows; `pods`
    is how many of its pods run at once (a distributed TrainJob's nodes, each of the step's size)."""
    asked = resources.limits()
    for key, hard in sorted(quota.items()):
        name = _bounded_resource(key)
        if name not in asked or name not in _SETTING:
            continue
        if quantity(asked[name]) * pods > quantity(hard):
            setting = _SETTING[name]
            each = f" on each of {pods} train.distributed workers" if pods > 1 else ""
            raise _refuse(
                f"resources.{step}.{setting} is {asked[name]}{each}, more than the {key} quota of namespace "
                f"{namespace} ({hard}, manifests/tenants/{namespace}/quota.yaml): the pod would never be admitted",
                f"lower resources.{step}.{setting} in config.yaml to at most {hard}, "
                f"or raise the tenant's quota in manifests/tenants/tenants.yaml",
            )


TRAIN_COMPONENT = "components.steps.train:train"


def _pods(step: Step, cfg: PipelineConfig) -> int:
    """How many pods of the step's size run at once: a distributed train's TrainJob has one a worker."""
    distributed = cfg.train.distributed
    return distributed.workers if step.component == TRAIN_COMPONENT and distributed is not None else 1


def sized(
    spec: PipelineSpec, cfg: PipelineConfig, *, policy: Path = GPU_POLICY, tenants: Path = TENANTS
) -> PipelineSpec:
    """`spec` with each step's sizes from config.yaml, refused as the cluster would refuse them."""
    names = [step.name for step in spec.steps]
    unknown = sorted(set(cfg.resources) - set(names))
    if unknown:
        raise _refuse(
            f"resources names {', '.join(unknown)}, which pipeline {spec.name} has no step of",
            f"size one of its steps instead: {', '.join(names)}",
        )
    quota = namespace_quota(cfg.cluster.namespace, tenants)
    steps = []
    for step in spec.steps:
        resources = step_resources(step, cfg)
        check_gpu_policy(step.name, resources, policy)
        if quota is not None:
            check_quota(step.name, resources, cfg.cluster.namespace, quota, _pods(step, cfg))
        steps.append(dataclasses.replace(step, resources=resources))
    return dataclasses.replace(spec, steps=tuple(steps))
