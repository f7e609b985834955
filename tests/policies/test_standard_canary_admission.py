"""Standard-mode canaries through admission as installed (issue 32 item 4, real OPA engine).

In Standard (RawDeployment) mode `mlops promote --canary` renders the new version as a spec.canary
entry beside the champion's predictor (components/steps/promote_canary.py, KServe 0.20). The
workload policies found pod specs and containers through lib.workloads, which knew spec.predictor
but not spec.canary[*].predictor: a canary predictor with an outside image, a literal credential,
host access or a GPU without a memory limit was admitted. Here the canaries the platform renders
(tests/policies/platform_objects.py, one per reference pipeline and stage) are admitted by both
overlays' Constraints, with what KServe makes of their canary predictors, and each way of breaking
a canary predictor is refused and named. test_pod_spec_locations.py has the location per policy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlops import admission, lint
from tests.policies import controller_objects_without_a_cluster as controllers
from tests.policies.platform_objects import OVERLAYS, Rendered, inference_services, overlay_objects

OUTSIDE = "docker.io/attacker/miner:latest"


@pytest.fixture(scope="module")
def overlays() -> Iterator[dict[str, list[dict[str, Any]]]]:
    yield overlay_objects()


@pytest.fixture(scope="module")
def installed(overlays: dict[str, list[dict[str, Any]]]) -> Iterator[dict[str, admission.PolicySet]]:
    yield {
        name: admission.PolicySet(policies=admission.policies_of(objects, f"overlay {name}"))
        for name, objects in overlays.items()
    }


@pytest.fixture(scope="module")
def canaries() -> Iterator[list[Rendered]]:
    yield [item for item in inference_services() if item.obj["spec"].get("canary")]


def _refusals(policies: admission.PolicySet, items: list[Rendered]) -> list[str]:
    return [f"{item.name}: {message}" for item in items for message in policies.violations(item.obj, user=item.user)]


def _made_of_canaries(canaries: list[Rendered], installed: list[dict[str, Any]]) -> list[Rendered]:
    """The Deployment, ReplicaSet and Pod KServe makes of each canary predictor: a predictor's, named
    `<isvc>-<predictor name>-predictor` (the CRD's spec.canary description)."""
    runtimes = [o for o in installed if o["kind"] == "ClusterServingRuntime"]
    (storage,) = [o for o in installed if o["kind"] == "ClusterStorageContainer"]
    made = []
    for item in canaries:
        for entry in item.obj["spec"]["canary"]:
            alone = copy.deepcopy(item.obj)
            alone["spec"] = {"predictor": copy.deepcopy(entry["predictor"])}
            for m in controllers.kserve_objects(alone, runtimes, storage):
                made.append(Rendered(f"made by {m.by} of {item.source}'s canary", m.obj, m.user))
    return made


def test_the_platform_renders_a_standard_mode_canary_for_each_pipeline_and_stage(canaries: list[Rendered]) -> None:
    """The positive control's input: each reference pipeline's canary in both stages, valid against
    the KServe CRD (strict: unknown fields too), with the canary's model spec and the champion's."""
    stages = {(item.obj["metadata"]["namespace"], item.source.split("(")[-1]) for item in canaries}
    assert len(canaries) >= 2 and len(stages) == len(canaries), stages
    for item in canaries:
        service = item.obj
        assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        assert lint.check(service) is None, item.name
        (entry,) = service["spec"]["canary"]
        assert (service["spec"]["predictor"]["name"], entry["predictor"]["name"], entry["trafficPercent"]) == (
            "v1",
            "v2",
            10,
        )
        assert entry["predictor"]["model"]["storageUri"].endswith("/x/2"), entry
    assert {item.source.split("(")[-1] for item in canaries} == {
        "staging, Standard mode)",
        "production, Standard mode)",
    }


def test_each_canary_and_what_kserve_makes_of_its_predictor_pass_every_installed_constraint(
    canaries: list[Rendered], installed: dict[str, admission.PolicySet], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    made = _made_of_canaries(canaries, overlays[OVERLAYS[-1]])
    assert {item.obj["kind"] for item in made} == {"Deployment", "ReplicaSet", "Pod"}
    for overlay, policies in installed.items():
        assert _refusals(policies, canaries + made) == [], overlay
        reviewing = {rule.name for rule in policies.policies for item in canaries if rule.matches(item.obj)}
        assert {"internal-registry-only", "no-node-access", "restricted-priority-and-gpu-nodes"} <= reviewing


def _model(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda predictor: edit(predictor["model"])


def _gpu_without_memory(model: dict[str, Any]) -> None:
    limits = model.setdefault("resources", {}).setdefault("limits", {})
    limits.pop("memory", None)
    limits["nvidia.com/gpu"] = "1"


Attack = Callable[[dict[str, Any]], None]

ATTACKS: dict[str, tuple[Attack, str]] = {
    "an outside image on its model": (
        _model(lambda m: m.update(image=OUTSIDE)),
        f'canary[0].predictor.model uses image "{OUTSIDE}"',
    ),
    "an outside init container": (
        lambda p: p.setdefault("initContainers", []).append({"name": "x", "image": OUTSIDE}),
        f'initContainer "x" uses image "{OUTSIDE}"',
    ),
    "a literal credential": (
        _model(lambda m: m.setdefault("env", []).append({"name": "DB_PASSWORD", "value": "hunter2"})),
        "canary[0].predictor.model sets DB_PASSWORD as a literal value",
    ),
    "a privileged model container": (
        _model(lambda m: m.update(securityContext={"privileged": True})),
        "canary[0].predictor.model runs privileged",
    ),
    "a GPU without a memory limit": (
        _model(_gpu_without_memory),
        "canary[0].predictor.model requests nvidia.com/gpu but sets no memory limit",
    ),
    "the node's network": (lambda p: p.update(hostNetwork=True), "sets hostNetwork"),
    "a hostPath volume": (
        lambda p: p.setdefault("volumes", []).append({"name": "root", "hostPath": {"path": "/"}}),
        'mounts hostPath "/"',
    ),
    "the training nodes' GPU taint": (
        lambda p: p.setdefault("tolerations", []).append({"key": "nvidia.com/gpu", "operator": "Exists"}),
        "may not tolerate nvidia.com/gpu",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_canary_predictor_that_breaks_a_policy_is_refused_by_every_overlay(
    attack: str, canaries: list[Rendered], installed: dict[str, admission.PolicySet]
) -> None:
    """The same edit on the champion's predictor is refused today; on the canary's it was admitted."""
    edit, expected = ATTACKS[attack]
    for item in canaries:
        broken = copy.deepcopy(item.obj)
        edit(broken["spec"]["canary"][0]["predictor"])
        assert broken["spec"]["predictor"] == item.obj["spec"]["predictor"]  # the champion is untouched
        for overlay, policies in installed.items():
            refused = policies.violations(broken, user=item.user)
            assert any(expected in message for message in refused), (overlay, item.name, refused)
