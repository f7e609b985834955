"""`mlops doctor`'s manifest checks on seeded objects, and on the shipped overlays (no cluster here)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.doctor import (
    FAIL,
    OK,
    Context,
    check_artifact_repositories,
    check_canary_mode,
    check_gpu_memory_limits,
    check_gpu_min_scale,
    load_objects,
)
from tests.cli_runner import mlops
from tests.conftest import REPO

GPU_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "trainer", "namespace": "forecast"},
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "train", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}
        }
    },
}
GPU_ISVC: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "fraud", "namespace": "fraud", "annotations": {}},
    "spec": {
        "predictor": {
            "minReplicas": 1,
            "model": {"resources": {"limits": {"nvidia.com/gpu": "1", "memory": "4Gi"}}},
        }
    },
}


def ctx(*objects: dict[str, Any]) -> Context:
    return Context(env={}, objects=list(objects))


def test_gpu_container_without_memory_limit() -> None:
    finding = check_gpu_memory_limits(ctx(GPU_DEPLOYMENT))
    assert finding.status == FAIL and "Deployment/forecast/trainer:train" in finding.detail
    fixed = copy.deepcopy(GPU_DEPLOYMENT)
    fixed["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "16Gi"
    assert check_gpu_memory_limits(ctx(fixed)).status == OK


def test_gpu_workflow_step_without_memory_limit() -> None:
    workflow = {
        "kind": "WorkflowTemplate",
        "metadata": {"name": "fraud", "namespace": "fraud"},
        "spec": {
            "templates": [
                {"name": "train", "container": {"name": "main", "resources": {"requests": {"nvidia.com/gpu": 1}}}}
            ]
        },
    }
    assert check_gpu_memory_limits(ctx(workflow)).status == FAIL


def test_gpu_inference_service_scaled_to_zero() -> None:
    assert check_gpu_min_scale(ctx(GPU_ISVC)).status == OK
    cold = copy.deepcopy(GPU_ISVC)
    cold["spec"]["predictor"]["minReplicas"] = 0
    finding = check_gpu_min_scale(ctx(cold))
    assert finding.status == FAIL and "minReplicas: 1" in finding.fix


def test_canary_in_raw_deployment_mode() -> None:
    canary = copy.deepcopy(GPU_ISVC)
    canary["spec"]["predictor"]["canaryTrafficPercent"] = 10
    assert check_canary_mode(ctx(canary)).status == OK  # Serverless is the default mode
    canary["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "RawDeployment"
    finding = check_canary_mode(ctx(canary))
    assert finding.status == FAIL and "ignores silently" in finding.detail


def test_namespace_running_workflows_without_the_artifact_repository() -> None:
    account = {"kind": "ServiceAccount", "metadata": {"name": "pipeline-runner", "namespace": "pricing"}}
    finding = check_artifact_repositories(ctx(account))
    assert finding.status == FAIL and "pricing" in finding.detail
    configmap = {"kind": "ConfigMap", "metadata": {"name": "artifact-repositories", "namespace": "pricing"}}
    assert check_artifact_repositories(ctx(account, configmap)).status == OK


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_shipped_overlays_pass_every_manifest_check(overlay: str) -> None:
    objects = load_objects(REPO / "manifests" / "overlays" / overlay)
    assert objects
    for check in (check_gpu_memory_limits, check_gpu_min_scale, check_canary_mode, check_artifact_repositories):
        assert check(ctx(*objects)).status == OK, check(ctx(*objects))


def test_doctor_cli_exits_non_zero_and_prints_the_fix(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(GPU_DEPLOYMENT))
    result = mlops("doctor", "--manifests", str(manifest), env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  gpu-memory-limit" in result.stdout
    assert "fix: set resources.limits.memory" in result.stdout
