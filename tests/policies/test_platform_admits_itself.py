"""Admission that the platform passes itself, on the real OPA engine, with the policies as installed.

issue 28 (4): two policies were written and tested but never installed (the policies'
kustomization left out pod-security.yaml and restricted-scheduling.yaml), and nothing showed
that what the platform renders is admitted by what it installs. Here both overlays are rendered,
their ConstraintTemplates and Constraints are the set installed, and every pod template the
platform renders (platform_objects: overlays, tenant folders, Argo goldens, the TrainJob and
Katib Experiment of a pipeline, the InferenceService promote renders, and what KServe, Knative,
Trainer, JobSet and Katib make of them) is reviewed by every Constraint that matches it, as
Gatekeeper matches (kinds, namespaces), with the user whose request creates it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from mlops import admission, admission_parameters
from tests.policies.platform_objects import (
    MANIFESTS,
    OVERLAYS,
    PLATFORM_ENGINEER,
    Rendered,
    overlay_objects,
    platform_objects,
)
from tests.policies.test_tenant_network_objects import promoted

POLICIES = MANIFESTS / "policies"


def _policy_documents(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o.get("kind") == "ConstraintTemplate" or o.get("apiVersion", "").startswith("constraints.gatekeeper.sh/")
    }


@pytest.fixture(scope="module")
def overlays() -> Iterator[dict[str, list[dict[str, Any]]]]:
    yield overlay_objects()


@pytest.fixture(scope="module")
def rendered(overlays: dict[str, list[dict[str, Any]]]) -> Iterator[list[Rendered]]:
    # with the NetworkPolicy and AuthorizationPolicy promote writes beside each model (issue 29)
    yield platform_objects(overlays) + promoted()


@pytest.fixture(scope="module")
def installed(overlays: dict[str, list[dict[str, Any]]]) -> Iterator[dict[str, admission.PolicySet]]:
    yield {
        name: admission.PolicySet(policies=admission.policies_of(objects, f"overlay {name}"))
        for name, objects in overlays.items()
    }


# The platform engineer applies the overlays and tenant folders with cluster-admin credentials
# (docs/install.md), so the API server sends their groups too: a deployer's (PLATFORM_DEPLOYERS).
ENGINEER_GROUPS = tuple(admission_parameters.PLATFORM_DEPLOYERS["groups"][:1])


def refusals(policies: admission.PolicySet, objects: list[Rendered]) -> list[str]:
    """Each refusal as `object (source, created by user): [constraint] message`."""
    return [
        f"{item.name}, created by {item.user}: {message}"
        for item in objects
        for message in policies.violations(
            item.obj, user=item.user, groups=ENGINEER_GROUPS if item.user == PLATFORM_ENGINEER else ()
        )
    ]


def test_every_policy_under_manifests_policies_is_installed_by_both_overlays(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    """issue 28: pod-security.yaml and restricted-scheduling.yaml were left out of the policies'
    kustomization, so no overlay installed them while docs/tenancy.md said both were enforced."""
    files = _policy_documents(
        [d for file in sorted(POLICIES.glob("*.yaml")) for d in yaml.safe_load_all(file.read_text()) if d]
    )
    assert {"no-node-access", "restricted-priority-and-gpu-nodes", "serving-labels-from-serving-controllers-only",
            "trainjobs-on-platform-runtimes", "tenant-network-objects-as-promote-renders",
            "workflow-metrics-label-their-own-namespace", "protected-service-accounts-run-only-by-the-platform",
            "decisions-writer-secret-only-in-the-transformer"} <= {
        name for _kind, name in files}  # fmt: skip
    for name in OVERLAYS:
        installed = _policy_documents(overlays[name])
        assert installed == files, (
            name,
            "left out:",
            files - installed,
            "not in manifests/policies:",
            installed - files,
        )
        templates = {
            o["spec"]["crd"]["spec"]["names"]["kind"] for o in overlays[name] if o["kind"] == "ConstraintTemplate"
        }
        constraints = {o["kind"] for o in overlays[name] if o["apiVersion"].startswith("constraints.gatekeeper.sh/")}
        assert constraints == templates, name  # each Constraint with its template, no template unused


def test_the_file_comparison_sees_a_policy_left_out(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """The comparison above, shown to fail: the overlay without pod-security.yaml (the old kustomization)."""
    without = [o for o in overlays["prod"] if o["metadata"]["name"] not in ("no-node-access", "k8spodsecuritybaseline")]
    files = _policy_documents(
        [d for file in sorted(POLICIES.glob("*.yaml")) for d in yaml.safe_load_all(file.read_text()) if d]
    )
    assert files - _policy_documents(without) == {
        ("ConstraintTemplate", "k8spodsecuritybaseline"),
        ("K8sPodSecurityBaseline", "no-node-access"),
    }


def test_every_pod_template_the_platform_renders_passes_every_installed_constraint(
    rendered: list[Rendered], installed: dict[str, admission.PolicySet]
) -> None:
    """issue 28: the positive control for the whole platform. Every object is reviewed, every
    installed Constraint reviews something, and the list holds each kind the platform makes."""
    kinds = {item.obj["kind"] for item in rendered}
    assert kinds >= {
        "WorkflowTemplate", "Workflow", "CronWorkflow", "TrainJob", "ClusterTrainingRuntime", "JobSet", "Job", "Pod",
        "Experiment", "Trial", "InferenceService", "Deployment", "ReplicaSet", "StatefulSet", "CronJob", "RayJob",
        "RayCluster",
    }, kinds  # fmt: skip
    names = {(item.obj["kind"], item.obj["metadata"].get("name")) for item in rendered}
    for kind, prefix in [("Job", "bucket-setup"), ("Job", "tenant-databases"), ("StatefulSet", "redis"),
                         ("CronJob", "feast-materialize")]:  # fmt: skip
        assert any(k == kind and str(n).startswith(prefix) for k, n in names), (kind, prefix, names)
    for overlay, policies in installed.items():
        assert refusals(policies, rendered) == [], overlay
        reviewed = {rule.name for rule in policies.policies if any(rule.matches(item.obj) for item in rendered)}
        assert reviewed == {rule.name for rule in policies.policies}, overlay


def _privileged(item: Rendered) -> Rendered:
    """`item` with its first container privileged, wherever lib.workloads finds it."""
    broken = copy.deepcopy(item.obj)
    spec = broken["spec"]
    if broken["kind"] == "WorkflowTemplate":
        container = next(t["container"] for t in spec["templates"] if "container" in t)
    elif broken["kind"] == "Pod":
        container = spec["containers"][0]
    else:
        raise AssertionError(f"no container to break in {item.name}")
    container.setdefault("securityContext", {})["privileged"] = True
    return Rendered(item.source, broken, item.user)


def test_a_privileged_container_injected_on_purpose_is_refused_and_named(
    rendered: list[Rendered], installed: dict[str, admission.PolicySet]
) -> None:
    """The check above, shown to see a refusal: a privileged container in the fraud
    WorkflowTemplate and in KServe's GPU predictor Pod is refused, naming object and constraint."""
    template = next(i for i in rendered if i.obj["kind"] == "WorkflowTemplate" and "fraud" in i.source)
    predictor = next(
        i for i in rendered
        if i.obj["kind"] == "Pod" and i.obj["metadata"].get("labels", {}).get("component") == "predictor"
        and i.obj["spec"].get("priorityClassName") == "production-inference"
    )  # fmt: skip
    for item in (template, predictor):
        denied = refusals(installed["prod"], [r if r is not item else _privileged(r) for r in rendered])
        assert len(denied) == 1 and denied[0].startswith(item.name), denied
        assert "[no-node-access]" in denied[0] and "runs privileged" in denied[0], denied
