"""`mlops doctor --manifests` on Standard-mode canaries: each spec.canary predictor is checked (issue 32).

KServe 0.20's spec.canary puts each canary predictor in a Deployment of its own beside the
champion's (components/steps/promote_canary.py). The doctor's checks read spec.predictor alone:
a GPU canary that scales to zero, a GPU canary without a memory limit, or a canaryTrafficPercent
KServe ignores on a canary predictor passed. An InferenceService's containers and model specs
were not in the GPU memory check at all.
"""

from __future__ import annotations

import copy
from typing import Any

from components.steps.promote_canary import with_canary
from mlops.doctor import FAIL, OK, Context, check_canary_mode, check_gpu_memory_limits, check_gpu_min_scale


def _service(version: int, resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "fraud",
            "namespace": "fraud",
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {"modelFormat": {"name": "triton"}, "storageUri": f"s3://m/{version}", "resources": resources},
            }
        },
    }


CPU = {"limits": {"cpu": "2", "memory": "4Gi"}}
GPU = {"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}}


def _canary(resources: dict[str, Any]) -> dict[str, Any]:
    """A CPU champion (v1) with v2 beside it in a spec.canary entry, as mlops promote renders it."""
    return with_canary(_service(1, CPU), _service(2, resources), champion_version=1, canary_version=2, percent=10)


def ctx(*objects: dict[str, Any]) -> Context:
    return Context(env={}, objects=list(objects))


def test_a_rendered_standard_mode_canary_passes_every_check() -> None:
    for resources in (CPU, GPU):
        service = _canary(resources)
        assert service["spec"]["canary"][0]["predictor"]["name"] == "v2"
        for check in (check_gpu_memory_limits, check_gpu_min_scale, check_canary_mode):
            assert check(ctx(service)).status == OK, check(ctx(service))


def test_a_gpu_canary_predictor_that_scales_to_zero_is_named() -> None:
    service = _canary(GPU)
    service["spec"]["canary"][0]["predictor"]["minReplicas"] = 0
    finding = check_gpu_min_scale(ctx(service))
    assert finding.status == FAIL, finding
    assert "InferenceService/fraud/fraud (canary[0].predictor)" in finding.detail and "spec.canary" in finding.fix
    cpu_only = _canary(CPU)
    cpu_only["spec"]["canary"][0]["predictor"]["minReplicas"] = 0  # no GPU: no minutes-long cold start
    assert check_gpu_min_scale(ctx(cpu_only)).status == OK


def test_gpu_containers_and_model_specs_without_a_memory_limit_are_named_in_every_predictor() -> None:
    unbounded = {"limits": {"nvidia.com/gpu": "1"}}
    finding = check_gpu_memory_limits(ctx(_canary(unbounded)))
    assert finding.status == FAIL and "InferenceService/fraud/fraud:canary[0].predictor.model" in finding.detail
    champion = _service(1, unbounded)
    assert "InferenceService/fraud/fraud:predictor.model" in check_gpu_memory_limits(ctx(champion)).detail
    sidecar = _canary(CPU)
    sidecar["spec"]["canary"][0]["predictor"]["containers"] = [{"name": "side", "resources": unbounded}]
    assert "InferenceService/fraud/fraud:side" in check_gpu_memory_limits(ctx(sidecar)).detail


def test_a_canary_traffic_percent_on_a_canary_predictor_in_standard_mode_is_named() -> None:
    service = _canary(CPU)
    ignored = copy.deepcopy(service)
    ignored["spec"]["canary"][0]["predictor"]["canaryTrafficPercent"] = 10
    finding = check_canary_mode(ctx(ignored))
    assert finding.status == FAIL and "InferenceService/fraud/fraud (canary[0].predictor) (10%)" in finding.detail
    assert "spec.canary entry" in finding.fix
    serverless = copy.deepcopy(ignored)
    serverless["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"
    assert check_canary_mode(ctx(serverless)).status == OK
