"""Gatekeeper policies evaluated by the real OPA engine (opa-golib-python-bindings embeds OPA v1).

The Rego is read out of the ConstraintTemplate YAML that is deployed, and the parameters out
of the Constraint beside it, so the test exercises exactly what reaches the cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.serving.served_bytes import EXPECTED_SHA256_ENV
from mlops import admission
from tests.conftest import REGISTRATION, REPO
from tests.policies.policy_files import POLICIES, installed_in_prod, policy


@pytest.fixture(scope="module")
def gpu() -> Iterator[admission.Policy]:
    yield policy("gpu-memory-limit.yaml")


@pytest.fixture(scope="module")
def promotion() -> Iterator[admission.Policy]:
    yield policy("promotion-guard.yaml")


@pytest.fixture(scope="module")
def registries() -> Iterator[admission.Policy]:
    yield policy("allowed-registries.yaml")


@pytest.fixture(scope="module")
def credentials() -> Iterator[admission.Policy]:
    yield policy("no-literal-credentials.yaml")


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "registry.mlops.internal/x:1", **container}]},
    }


def deployment(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "registry.mlops.internal/x:1", **container}]}}
        },
    }


def workflow(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"templates": [{"name": "train", "container": {"image": "registry.mlops.internal/x:1", **container}}]},
    }


GPU_NO_MEMORY = {"resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "4"}}}
GPU_WITH_MEMORY = {"resources": {"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"}}}


@pytest.mark.parametrize("make", [pod, deployment, workflow])
def test_gpu_without_memory_limit_is_denied(gpu: admission.Policy, make: Any) -> None:
    denied = gpu.violations(make(GPU_NO_MEMORY))
    assert len(denied) == 1 and "sets no memory limit" in denied[0]


@pytest.mark.parametrize("make", [pod, deployment, workflow])
def test_gpu_with_memory_limit_and_cpu_only_are_allowed(gpu: admission.Policy, make: Any) -> None:
    assert gpu.violations(make(GPU_WITH_MEMORY)) == []
    assert gpu.violations(make({"resources": {"limits": {"cpu": "1"}}})) == []


def test_gpu_in_requests_only_counts_too(gpu: admission.Policy) -> None:
    assert gpu.violations(pod({"resources": {"requests": {"nvidia.com/gpu": "1"}}}))


ARTIFACT = "a" * 64
PINNED = {
    "name": EXPECTED_SHA256_ENV,
    "value": ARTIFACT,
}  # promote's pair: tests/policies/test_served_bytes_admission.py


def inference_service(**annotations: str) -> dict[str, Any]:
    prefix = "mlops.private-platform.io"
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "fraud-detector",
            "labels": {f"{prefix}/stage": "production"},
            "annotations": {f"{prefix}/{k.replace('_', '-')}": v for k, v in annotations.items()},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "triton"}, "runtime": "triton-fil", "env": [PINNED]}}},
    }


EVIDENCE = {
    "holdout_metric": "roc_auc",
    "holdout_score": "0.93",
    "holdout_auc": "0.93",
    "model_card_url": "s3://mlflow/1/abc/artifacts/model_card.md",
    "mlflow_run_id": "0123456789abcdef0123456789abcdef",
    "trained_by": "bob@bank.internal",
    "signed_off_by": "alice@bank.internal",
    "artifact_sha256": ARTIFACT,
}


def test_production_service_with_all_evidence_is_allowed(promotion: admission.Policy) -> None:
    assert promotion.violations(inference_service(**EVIDENCE)) == []


@pytest.mark.parametrize(
    "missing", ["model_card_url", "signed_off_by", "trained_by", "mlflow_run_id", "holdout_metric"]
)
def test_missing_evidence_is_named(promotion: admission.Policy, missing: str) -> None:
    evidence = {k: v for k, v in EVIDENCE.items() if k != missing}
    denied = promotion.violations(inference_service(**evidence))
    assert any(missing.replace("_", "-") in message for message in denied), denied


def test_low_auc_bad_run_id_and_missing_auc_are_denied(promotion: admission.Policy) -> None:
    assert "below the required 0.85" in promotion.violations(inference_service(**{**EVIDENCE, "holdout_auc": "0.8"}))[0]
    assert (
        "not a 32-character hex"
        in promotion.violations(inference_service(**{**EVIDENCE, "mlflow_run_id": "latest"}))[0]
    )
    assert "is not a number" in promotion.violations(inference_service(**{**EVIDENCE, "holdout_auc": "high"}))[0]
    no_auc = {k: v for k, v in EVIDENCE.items() if k != "holdout_auc"}
    assert "needs mlops.private-platform.io/holdout-auc" in promotion.violations(inference_service(**no_auc))[0]


def test_regressor_is_held_to_its_error_bound(promotion: admission.Policy) -> None:
    forecast = {**{k: v for k, v in EVIDENCE.items() if k != "holdout_auc"}, "holdout_metric": "mape"}
    assert promotion.violations(inference_service(**{**forecast, "holdout_score": "0.2"})) == []
    assert (
        "above the allowed 0.25" in promotion.violations(inference_service(**{**forecast, "holdout_score": "0.4"}))[0]
    )


def test_staging_services_are_not_gated(promotion: admission.Policy) -> None:
    staging = inference_service(artifact_sha256=ARTIFACT)  # the pinned pair is checked at every stage
    staging["metadata"]["labels"]["mlops.private-platform.io/stage"] = "staging"
    assert promotion.violations(staging) == []


def test_a_service_without_a_stage_label_is_gated_as_production(promotion: admission.Policy) -> None:
    """Leaving the label off once skipped every check; only a declared non-production stage is ungated."""
    unlabelled = inference_service()
    del unlabelled["metadata"]["labels"]["mlops.private-platform.io/stage"]
    assert any("missing annotation" in message for message in promotion.violations(unlabelled))
    unlabelled["metadata"]["annotations"] = inference_service(**EVIDENCE)["metadata"]["annotations"]
    assert promotion.violations(unlabelled) == []  # the positive control: with its evidence it passes
    typo = inference_service()
    typo["metadata"]["labels"]["mlops.private-platform.io/stage"] = "prodution"
    assert promotion.violations(typo)


def test_a_gate_metric_without_a_declared_bound_is_denied(promotion: admission.Policy) -> None:
    """`holdout-metric: accuracy` with 0.01 was admitted: no rule knew accuracy."""
    plain = {k: v for k, v in EVIDENCE.items() if k != "holdout_auc"}
    denied = promotion.violations(inference_service(**{**plain, "holdout_metric": "accuracy", "holdout_score": "0.01"}))
    assert any('holdout metric "accuracy" has no bound' in message for message in denied), denied
    assert (
        promotion.violations(inference_service(**{**plain, "holdout_metric": "pr_auc", "holdout_score": "0.7"})) == []
    )
    low = promotion.violations(inference_service(**{**plain, "holdout_metric": "pr_auc", "holdout_score": "0.1"}))
    assert any("below the required 0.5" in message for message in low), low


@pytest.mark.parametrize("make", [pod, deployment, workflow])
def test_images_only_from_the_internal_registry(registries: admission.Policy, make: Any) -> None:
    assert registries.violations(make({})) == []
    outside = make({})
    text = yaml.safe_dump(outside).replace("registry.mlops.internal/x:1", "docker.io/library/python:3.11")
    denied = registries.violations(yaml.safe_load(text))
    assert len(denied) == 1 and "docker.io/library/python:3.11" in denied[0]


@pytest.mark.parametrize("make", [pod, deployment, workflow])
def test_literal_credentials_are_denied_secret_refs_allowed(credentials: admission.Policy, make: Any) -> None:
    literal = make({"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}]})
    assert "AWS_SECRET_ACCESS_KEY as a literal value" in credentials.violations(literal)[0]
    by_reference = make(
        {
            "env": [
                {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret-key"}}},
                {"name": "AWS_METADATA_SERVICE_TIMEOUT", "value": "1"},
                {"name": "MLFLOW_S3_ENDPOINT_URL", "value": "http://minio:9000"},
            ]
        }
    )
    assert credentials.violations(by_reference) == []


def test_every_installed_template_and_constraint_is_a_valid_gatekeeper_object() -> None:
    """Each template the prod overlay installs against Gatekeeper's ConstraintTemplate CRD
    (MLOPS_SCHEMAS_DIR, mlops lint's strict check), each Constraint's parameters against the schema its
    template declares, a stray parameter refused (the check sees one). Every installed one, not a list:
    the three files once listed here left the promotion guard's parameters unchecked, and Gatekeeper
    prunes a parameter its template's schema does not declare, so a rule reading it goes silent."""
    from mlops import lint
    from mlops.lint import check_against_schema

    installed = installed_in_prod().policies
    files = {path.name for path in POLICIES.glob("*.yaml") if "ConstraintTemplate" in path.read_text()}
    assert len(installed) >= len(files) > 10, (len(installed), sorted(files))
    problems = []
    for rule in installed:
        schema = rule.template["spec"]["crd"]["spec"].get("validation", {}).get("openAPIV3Schema", {})
        found = [
            lint.check(rule.template),
            check_against_schema(rule.parameters, schema),
            None if check_against_schema({**rule.parameters, "unknown": True}, schema) else "a stray one admitted",
        ]
        problems += [f"{rule.name}: {problem}" for problem in found if problem]
    assert problems == []


def test_our_rendered_pipelines_comply_with_the_platform_policies(
    gpu: admission.Policy, registries: admission.Policy, credentials: admission.Policy
) -> None:
    for name in ("fraud", "forecast"):
        template = yaml.safe_load((REPO / "pipelines" / name / "golden" / "workflow-template.yaml").read_text())
        for rule in (gpu, registries, credentials):
            assert rule.violations(template) == [], (name, rule.name)
        stripped = copy.deepcopy(template)
        for t in stripped["spec"]["templates"]:
            if "container" in t:
                t["container"]["resources"]["limits"].pop("memory", None)
        assert gpu.violations(stripped), "the policy must catch a GPU step without a memory limit"


def test_a_promoted_service_from_the_pipeline_passes_once_signed_off(
    promotion: admission.Policy, tmp_path: Path
) -> None:
    from components.steps.promote import render_inference_service

    registration = dict(REGISTRATION)
    from components.config import PromoteSettings

    production = PromoteSettings(namespace="fraud", stage="production", gpu=True, memory_limit="4Gi")
    kwargs: dict[str, Any] = {"storage_uri": "s3://models/x", "canary_percent": 10, "trained_by": "bob@bank.internal"}
    unsigned = render_inference_service(registration, settings=production, **kwargs)
    assert any("signed-off-by" in m for m in promotion.violations(unsigned))
    signed_off = production.model_copy(update={"signed_off_by": "alice@bank.internal"})
    signed = render_inference_service(registration, settings=signed_off, **kwargs)
    assert promotion.violations(signed) == []


def test_forecast_tenant_gpu_deployment_without_memory_limit_is_rejected(gpu: admission.Policy) -> None:
    """The tenant namespace is inside the constraint's reach, and the rule denies the Deployment."""
    from tests.rendered_manifests import render

    tenant = render(REPO / "manifests" / "tenants" / "forecast")
    assert {"kind": "Namespace", "name": "forecast"} in [
        {"kind": o["kind"], "name": o["metadata"]["name"]} for o in tenant if o["kind"] == "Namespace"
    ]
    documents = yaml.safe_load_all((POLICIES / "gpu-memory-limit.yaml").read_text())
    constraint = next(d for d in documents if d and d["kind"] != "ConstraintTemplate")
    match = constraint["spec"]["match"]
    assert "forecast" not in match.get("excludedNamespaces", [])
    assert match.get("namespaces") in (None, []) or "forecast" in match["namespaces"]
    assert any("Deployment" in kinds["kinds"] for kinds in match["kinds"])
    trainer = deployment(GPU_NO_MEMORY)
    trainer["metadata"]["namespace"] = "forecast"
    denied = gpu.violations(trainer)
    assert len(denied) == 1 and "sets no memory limit" in denied[0]
    trainer["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "24Gi"
    assert gpu.violations(trainer) == []


def test_gpu_inference_service_without_memory_limit_is_denied(gpu: admission.Policy) -> None:
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "fraud", "namespace": "fraud"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "triton"},
                    "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "4Gi"}},
                }
            }
        },
    }
    assert gpu.matches(service) and gpu.violations(service) == []
    no_limit = copy.deepcopy(service)
    del no_limit["spec"]["predictor"]["model"]["resources"]["limits"]["memory"]
    assert gpu.violations(no_limit) == [
        "predictor.model requests nvidia.com/gpu but sets no memory limit: add resources.limits.memory"
    ]
    sidecar = copy.deepcopy(service)
    gpu_container = {"name": "features", "resources": {"requests": {"nvidia.com/gpu": 1}}}
    sidecar["spec"]["transformer"] = {"containers": [gpu_container]}
    assert gpu.violations(sidecar) == [
        'container "features" requests nvidia.com/gpu but sets no memory limit: add resources.limits.memory'
    ]


def test_policy_set_names_the_constraint_and_respects_match_kinds() -> None:
    policies = admission.PolicySet()
    pod_with_gpu = pod({"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    assert policies.violations(pod_with_gpu) == [
        '[gpu-workloads-set-memory-limits] container "c" requests nvidia.com/gpu but sets no memory limit: '
        "add resources.limits.memory"
    ]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"password": "hunter2"}}
    assert policies.violations(config_map) == []


def test_every_workload_policy_carries_the_current_workload_library() -> None:
    """lib/workloads.rego is the one list of pod-spec locations; `make golden` copies it into each template."""
    assert admission.sync_workload_library(write=False) == []
    importing = [
        p for p in admission.load_policies() if "data.lib.workloads" in p.template["spec"]["targets"][0]["rego"]
    ]
    assert {p.name for p in importing} >= {
        "internal-registry-only",
        "credentials-from-secrets-only",
        "gpu-workloads-set-memory-limits",
        "no-node-access",
        "restricted-priority-and-gpu-nodes",
    }


def _with_transformer() -> dict[str, Any]:
    from components.config import transformer_settings
    from components.steps.promote import render_inference_service
    from pipelines.fraud import pipeline as fraud

    cfg = fraud.DECLARATION.config()
    settings = cfg.promote.model_copy(update={"signed_off_by": "alice@bank.internal"})
    return render_inference_service(
        dict(REGISTRATION),  # type: ignore[arg-type]
        storage_uri="s3://models/x",
        settings=settings,
        canary_percent=10,
        transformer=transformer_settings(cfg, fraud.DECLARATION.spec.image),
    )


@pytest.mark.parametrize(
    ("edit", "file", "message"),
    [
        (lambda c: c.update(image="docker.io/someone/transformer:latest"), "allowed-registries.yaml", "transformer"),
        (lambda c: c["env"].append({"name": "MLOPS_FEAST_REDIS_PASSWORD", "value": "hunter2"}),
         "no-literal-credentials.yaml", "MLOPS_FEAST_REDIS_PASSWORD as a literal"),
        (lambda c: c["securityContext"].update(privileged=True), "pod-security.yaml", "runs privileged"),
    ],
)  # fmt: skip
def test_the_transformer_is_admitted_as_rendered_and_held_to_every_rule(edit: Any, file: str, message: str) -> None:
    """The scoring transformer is a workload like the predictor: admitted as promote renders it
    (positive control, every policy), denied once it pulls from elsewhere, carries a password in
    clear or runs privileged."""
    service = _with_transformer()
    assert service["spec"]["transformer"]["containers"][0]["image"].startswith("registry.mlops.internal/")
    assert admission.PolicySet(POLICIES).violations(service) == []
    attacked = copy.deepcopy(service)
    edit(attacked["spec"]["transformer"]["containers"][0])
    denied = policy(file).violations(attacked)
    assert denied and any(message in line for line in denied), denied
