"""`mlops doctor --manifests`: the design module's failures that show in rendered objects.

This machine has no cluster: the checks read a kustomize folder's output or YAML files. An
InferenceService's predictors are its spec.predictor and, in Standard (RawDeployment) mode, each
spec.canary entry's predictor (KServe 0.20): each is a pod of its own, checked like the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlops.findings import FAIL, OK, SKIP, Context, Finding

__all__ = [
    "ARTIFACT_REPOSITORIES",
    "GPU",
    "MANIFEST_CHECKS",
    "check_artifact_repositories",
    "check_canary_mode",
    "check_gpu_memory_limits",
    "check_gpu_min_scale",
]

GPU = "nvidia.com/gpu"
ARTIFACT_REPOSITORIES = "artifact-repositories"


SERVING_COMPONENTS = ("predictor", "transformer", "explainer")
MODEL_FRAMEWORKS = frozenset(
    {"model", "triton", "sklearn", "xgboost", "tensorflow", "pytorch", "onnx", "huggingface", "lightgbm", "paddle",
     "pmml", "alibi", "art"}
)  # fmt: skip
"""KServe's model specs: a container under a framework key of a component (lib/workloads.rego's list)."""


def _predictors(isvc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, predictor): spec.predictor, then each Standard-mode canary's (spec.canary[i].predictor)."""
    spec = isvc.get("spec") or {}
    found = [("predictor", spec.get("predictor") or {})]
    for i, entry in enumerate(spec.get("canary") or []):
        found.append((f"canary[{i}].predictor", (entry or {}).get("predictor") or {}))
    return found


def _serving_pod_specs(isvc: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Each component's pod spec, its model specs among its containers (named where they sit)."""
    spec = isvc.get("spec") or {}
    parts = [(name, spec.get(name) or {}) for name in SERVING_COMPONENTS[1:]] + _predictors(isvc)
    for where, part in parts:
        models = [
            {**c, "name": f"{where}.{key}"}
            for key, c in part.items()
            if key in MODEL_FRAMEWORKS and isinstance(c, dict)
        ]
        yield {**part, "containers": [*(part.get("containers") or []), *models]}


def _pod_specs(obj: dict[str, Any]) -> Iterable[dict[str, Any]]:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "InferenceService":
        yield from _serving_pod_specs(obj)
    elif kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    elif kind in ("Workflow", "WorkflowTemplate", "CronWorkflow"):
        workflow = spec.get("workflowSpec", spec) if kind == "CronWorkflow" else spec
        for template in workflow.get("templates") or []:
            containers = [c for c in [template.get("container"), template.get("script")] if c]
            if containers:
                yield {"containers": containers}


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def _needs_objects(name: str, ctx: Context) -> Finding | None:
    if not ctx.objects:
        return Finding(name, SKIP, "no manifests given (--manifests PATH)")
    return None


def check_gpu_memory_limits(ctx: Context) -> Finding:
    name = "gpu-memory-limit"
    if skipped := _needs_objects(name, ctx):
        return skipped
    offenders = []
    for obj in ctx.objects:
        for spec in _pod_specs(obj):
            for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
                resources = container.get("resources") or {}
                wants_gpu = GPU in (resources.get("limits") or {}) or GPU in (resources.get("requests") or {})
                if wants_gpu and "memory" not in (resources.get("limits") or {}):
                    offenders.append(f"{_name(obj)}:{container.get('name', '?')}")
    if offenders:
        return Finding(
            name,
            FAIL,
            f"GPU containers without a memory limit: {', '.join(offenders)}; one leak takes the node down",
            "set resources.limits.memory on every container that requests nvidia.com/gpu (Gatekeeper enforces it)",
        )
    return Finding(name, OK, "every GPU container has a memory limit")


def _isvcs(ctx: Context) -> list[dict[str, Any]]:
    return [obj for obj in ctx.objects if obj.get("kind") == "InferenceService"]


def _where(isvc: dict[str, Any], where: str) -> str:
    return _name(isvc) if where == "predictor" else f"{_name(isvc)} ({where})"


def check_gpu_min_scale(ctx: Context) -> Finding:
    name = "gpu-min-scale"
    if skipped := _needs_objects(name, ctx):
        return skipped
    cold = []
    for isvc in _isvcs(ctx):
        annotations = (isvc.get("metadata") or {}).get("annotations") or {}
        default = annotations.get(
            "serving.knative.dev/minScale", annotations.get("autoscaling.knative.dev/minScale", 1)
        )
        for where, predictor in _predictors(isvc):
            if GPU in str(predictor) and int(predictor.get("minReplicas", default)) < 1:
                cold.append(_where(isvc, where))
    if cold:
        return Finding(
            name,
            FAIL,
            f"GPU InferenceServices that scale to zero: {', '.join(cold)}; the first request waits minutes"
            " for a node, a pull and a model load",
            "set minReplicas: 1 on each GPU predictor (spec.predictor, each spec.canary[].predictor; and"
            " serving.knative.dev/minScale: '1' in Serverless mode)",
        )
    return Finding(name, OK, f"{len(_isvcs(ctx))} InferenceServices; none on GPU scales to zero")


def check_canary_mode(ctx: Context) -> Finding:
    name = "canary-deployment-mode"
    if skipped := _needs_objects(name, ctx):
        return skipped
    ignored = []
    for isvc in _isvcs(ctx):
        annotations = (isvc.get("metadata") or {}).get("annotations") or {}
        mode = annotations.get("serving.kserve.io/deploymentMode", "Serverless")
        for where, predictor in _predictors(isvc):
            canary = predictor.get("canaryTrafficPercent")
            if canary is not None and mode in ("RawDeployment", "Standard"):
                ignored.append(f"{_where(isvc, where)} ({canary}%)")
    if ignored:
        return Finding(
            name,
            FAIL,
            f"canaryTrafficPercent in RawDeployment mode, which KServe ignores silently: {', '.join(ignored)}",
            "drop canaryTrafficPercent: in Standard mode a canary is a spec.canary entry beside the champion's"
            " predictor (KServe 0.20+; `mlops promote --canary N` renders it), or use Serverless (Knative) mode",
        )
    return Finding(name, OK, "no canary is configured in RawDeployment mode")


def check_artifact_repositories(ctx: Context) -> Finding:
    name = "argo-artifact-repository"
    if skipped := _needs_objects(name, ctx):
        return skipped
    have = {
        (obj.get("metadata") or {}).get("namespace")
        for obj in ctx.objects
        if obj.get("kind") == "ConfigMap" and (obj.get("metadata") or {}).get("name") == ARTIFACT_REPOSITORIES
    }
    need: dict[str, str] = {}
    for obj in ctx.objects:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        namespace = meta.get("namespace")
        runs_workflows = kind in ("Workflow", "WorkflowTemplate", "CronWorkflow") or (
            kind == "ServiceAccount" and meta.get("name") == "pipeline-runner"
        )
        if runs_workflows and namespace and namespace not in have:
            need.setdefault(namespace, _name(obj))
    if need:
        where = ", ".join(f"{ns} (for {who})" for ns, who in sorted(need.items()))
        return Finding(
            name,
            FAIL,
            f"namespaces that run workflows without the {ARTIFACT_REPOSITORIES} ConfigMap: {where};"
            " their steps fail on the first output artifact",
            f"add the {ARTIFACT_REPOSITORIES} ConfigMap to each namespace (manifests/base/argo shows one)",
        )
    return Finding(name, OK, f"{ARTIFACT_REPOSITORIES} present wherever workflows run")


MANIFEST_CHECKS = (check_gpu_memory_limits, check_gpu_min_scale, check_canary_mode, check_artifact_repositories)
