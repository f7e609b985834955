"""The served bytes are the recorded bytes, at admission (manifests/policies/promotion-guard.yaml).

The Triton runtime checks what KServe downloaded against the predictor's MLOPS_ARTIFACT_SHA256 before
Triton starts (components/serving/served_bytes.py); serving history and the audit read the service's
`artifact-sha256` annotation. Both are rendered by `mlops promote` from the registration. A member who
applied a service with one changed and not the other would have Triton verify, and serve, bytes the
record does not name. The promotion guard, on the real OPA engine (mlops.admission), refuses that:

- positive control: every InferenceService promote renders (every reference pipeline, stage and mode)
  carries the variable equal to the annotation and is admitted by the guard and by every installed
  Constraint;
- forbidden: the variable differs from the annotation (production and staging), is read at run time
  (valueFrom), is given twice with the second forged, or is missing from a production predictor; the
  annotation is not a sha256;
- broken on purpose: the guard without its equality paragraph admits the forged variable, and no
  other installed Constraint refuses it;
- a Standard-mode canary (annotations are the canary's): the canary's predictor is judged against
  them, the champion's against what it was admitted with (the stored object of the update).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from components.serving.served_bytes import ARTIFACT_SHA256_ANNOTATION, EXPECTED_SHA256_ENV, PREDICTOR_MODEL_FIELDS
from components.steps.promote import SERVING_RUNTIMES
from mlops import admission, admission_parameters
from tests.policies.platform_objects import Rendered, inference_services, overlay_objects
from tests.policies.policy_files import installed_in_prod, policy, without_paragraph

FILE = "promotion-guard.yaml"
PREFIX = "mlops.private-platform.io"
FORGED = "f" * 64


@pytest.fixture(scope="module")
def rule() -> Iterator[admission.Policy]:
    yield policy(FILE)


@pytest.fixture(scope="module")
def installed() -> Iterator[admission.PolicySet]:
    yield installed_in_prod()


@pytest.fixture(scope="module")
def services() -> Iterator[list[Rendered]]:
    yield inference_services()


def _env(service: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = service["spec"]["predictor"]["model"].setdefault("env", [])
    return env


def _pinned(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The variable in the main predictor (a Standard-mode canary's champion, which a create brings
    and admission judges like the canary)."""
    return [entry for entry in _env(service) if entry["name"] == EXPECTED_SHA256_ENV]


def _all_pinned(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The variable in every predictor: the main one and each spec.canary entry's."""
    models = [service["spec"]["predictor"]["model"]]
    models += [entry["predictor"]["model"] for entry in service["spec"].get("canary", [])]
    return [entry for model in models for entry in model.get("env", []) if entry["name"] == EXPECTED_SHA256_ENV]


def _annotation(service: dict[str, Any]) -> str:
    value: str = service["metadata"]["annotations"][f"{PREFIX}/{ARTIFACT_SHA256_ANNOTATION}"]
    return value


def _production(services: list[Rendered]) -> list[Rendered]:
    found = [item for item in services if "(production" in item.source]
    assert found, "promote renders production services"
    return found


def test_the_parameters_are_the_ones_python_renders(rule: admission.Policy) -> None:
    """One source: make golden writes the variable and the annotation from served_bytes, which the
    Triton runtime's check and promote's rendering import."""
    served = rule.parameters["servedBytes"]
    assert (served["env"], served["annotation"]) == (EXPECTED_SHA256_ENV, ARTIFACT_SHA256_ANNOTATION)
    assert served["runtimes"] == sorted(SERVING_RUNTIMES) and served["modelFields"] == list(PREDICTOR_MODEL_FIELDS)
    for runtime in served["runtimes"]:  # each one the platform installs runs the check before Triton
        (installed,) = [o for o in overlay_objects()["prod"]
                        if o["kind"] == "ClusterServingRuntime" and o["metadata"]["name"] == runtime]  # fmt: skip
        assert "served_bytes.py" in " ".join(installed["spec"]["containers"][0]["command"]), runtime
    assert (
        admission_parameters.GENERATED["production-promotion-evidence"]["parameters.servedBytes"]()
        == (rule.parameters["servedBytes"])
    )


def test_what_promote_renders_is_admitted(
    rule: admission.Policy, installed: admission.PolicySet, services: list[Rendered]
) -> None:
    """Positive control: each rendered service pins the variable to the annotation (so the rule has
    something to judge) and is admitted, applied by its signer and in the audit."""
    for item in services:
        pinned = _all_pinned(item.obj)
        assert pinned and all(p["value"] == _annotation(item.obj) for p in pinned), item.name
        assert len(_annotation(item.obj)) == 64, item.name
        assert rule.violations(item.obj, user=item.user) == [], item.name
        assert rule.violations(item.obj, user=None) == [], item.name
        assert installed.violations(item.obj, user=item.user) == [], item.name


def _forged_value(service: dict[str, Any]) -> None:
    _pinned(service)[0]["value"] = FORGED


def _forged_annotation(service: dict[str, Any]) -> None:
    service["metadata"]["annotations"][f"{PREFIX}/{ARTIFACT_SHA256_ANNOTATION}"] = FORGED


def _read_at_run_time(service: dict[str, Any]) -> None:
    entry = _pinned(service)[0]
    del entry["value"]
    entry["valueFrom"] = {"configMapKeyRef": {"name": "mine", "key": "sha256"}}


def _twice(service: dict[str, Any]) -> None:
    _env(service).append({"name": EXPECTED_SHA256_ENV, "value": FORGED})  # the last one is what the pod gets


ATTACKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "the variable forged": _forged_value,
    "the annotation changed, not the variable": _forged_annotation,
    "the variable read at run time": _read_at_run_time,
    "the variable twice, the second forged": _twice,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_variable_that_is_not_the_annotation_is_refused(
    rule: admission.Policy, services: list[Rendered], attack: str
) -> None:
    """Every stage: a staging service is still served by the same runtime and recorded the same way."""
    for item in services:
        changed = copy.deepcopy(item.obj)
        ATTACKS[attack](changed)
        refused = rule.violations(changed, user=item.user)
        assert any(EXPECTED_SHA256_ENV in message and "which the record names" in message for message in refused), (
            item.name,
            refused,
        )


def test_a_production_predictor_without_the_variable_or_with_no_sha256_is_refused(
    rule: admission.Policy, services: list[Rendered]
) -> None:
    for item in _production(services):
        missing = copy.deepcopy(item.obj)
        _env(missing).clear()
        assert any("exactly once (it has it 0 times)" in m for m in rule.violations(missing, user=item.user)), item.name
        short = copy.deepcopy(item.obj)
        short["metadata"]["annotations"][f"{PREFIX}/{ARTIFACT_SHA256_ANNOTATION}"] = "abc"
        for pinned in _all_pinned(short):
            pinned["value"] = "abc"  # equal, so only the form is wrong
        refused = rule.violations(short, user=item.user)
        assert any("64 lowercase hex digits" in m for m in refused), (item.name, refused)
        assert not any("which the record names" in m for m in refused), refused


def test_without_the_equality_the_forged_variable_is_admitted(
    rule: admission.Policy, installed: admission.PolicySet, services: list[Rendered]
) -> None:
    """Negative control: with the equality paragraph taken out, the forged variable is admitted by the
    guard, and by every other installed Constraint: this paragraph is the one thing that refuses it."""
    broken = without_paragraph(rule, "which the record names")
    others = admission.PolicySet(policies=[p for p in installed.policies if p.name != rule.name])
    assert len(others.policies) == len(installed.policies) - 1, "the platform installs the guard"
    for item in _production(services):
        forged = copy.deepcopy(item.obj)
        _forged_value(forged)
        assert rule.violations(forged, user=item.user) != [], item.name
        assert broken.violations(forged, user=item.user) == [], item.name
        assert others.violations(forged, user=item.user) == [], item.name


def _versions(item: Rendered) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two Standard-mode services of one model with different bytes: the champion (v1) serving alone,
    and the canary version (v2) rendered as promote renders it."""
    from components.steps.promote_canary import stable_service

    champion = copy.deepcopy(item.obj)
    champion["metadata"]["annotations"][f"{PREFIX}/{ARTIFACT_SHA256_ANNOTATION}"] = "c" * 64
    _pinned(champion)[0]["value"] = "c" * 64
    for container in champion["spec"].get("transformer", {}).get("containers", []):
        for entry in container["env"]:  # serving alone, as promote's standard_service renders it
            if entry["name"] == "MLOPS_SERVING_ROLE":
                entry["value"] = "champion"
    return stable_service(champion, 1), copy.deepcopy(item.obj)


def test_a_canary_update_keeps_the_champions_variable(rule: admission.Policy, services: list[Rendered]) -> None:
    """Beside a Standard-mode canary the annotations are the canary's, so the champion's predictor is
    judged against what it was admitted with: the update promote makes is admitted (positive control:
    the two shas differ, so the champion is not equal to the annotation); the same update with the
    champion's variable changed, or the canary's forged, is refused."""
    from components.steps.promote_canary import with_canary

    plain = [item for item in _production(services) if "canary" not in item.obj["spec"]]
    assert plain
    for item in plain:
        stored, new = _versions(item)
        update = with_canary(stored, new, champion_version=1, canary_version=2, percent=10)
        assert _pinned(update)[0]["value"] == "c" * 64 != _annotation(update)
        assert rule.violations(update, user=item.user, old=stored) == [], item.name
        changed = copy.deepcopy(update)
        _pinned(changed)[0]["value"] = FORGED
        refused = rule.violations(changed, user=item.user, old=stored)
        assert any("changed beside a canary" in m for m in refused), (item.name, refused)
        forged = copy.deepcopy(update)
        forged["spec"]["canary"][0]["predictor"]["model"]["env"][0]["value"] = FORGED
        refused = rule.violations(forged, user=item.user, old=stored)
        assert any("which the record names" in m for m in refused), (item.name, refused)


def _command(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["model"]["command"] = ["env"]  # KServe: replaces served_bytes.py


def _image(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["model"]["image"] = "registry.mlops.internal/mine/tritonserver:1"


def _args(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["model"]["args"] = ["--model-repository=s3://models/mine"]


def _runtime(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["model"]["runtime"] = "kserve-tritonserver"


def _sidecar(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["containers"] = [{"name": "swap", "image": "registry.mlops.internal/x:1"}]


def _env_from(service: dict[str, Any]) -> None:
    service["spec"]["predictor"]["model"]["envFrom"] = [{"configMapRef": {"name": "mine"}}]


BYPASSES: dict[str, Callable[[dict[str, Any]], None]] = {
    "a command replacing the check": _command,
    "another image": _image,
    "more arguments": _args,
    "another runtime": _runtime,
    "a container beside the model": _sidecar,
    "variables from a ConfigMap": _env_from,
}


@pytest.mark.parametrize("bypass", sorted(BYPASSES))
def test_a_predictor_that_would_skip_the_check_is_refused(
    rule: admission.Policy, services: list[Rendered], bypass: str
) -> None:
    """The review's HIGH 1: with the variable and the annotation intact, a predictor that does not run
    the platform's runtime as promote renders it never checks the bytes. Refused at every stage."""
    for item in services:
        changed = copy.deepcopy(item.obj)
        BYPASSES[bypass](changed)
        refused = rule.violations(changed, user=item.user)
        assert any("a predictor" in m for m in refused), (item.name, refused)


def test_a_staging_version_is_not_carried_into_production_by_a_canary(
    rule: admission.Policy, services: list[Rendered]
) -> None:
    """The review's HIGH 2: a staging service pinned to the member's own bytes, updated to production
    with the signed-off version as a canary beside it (Standard mode) or as the new revision with
    canaryTrafficPercent (Serverless), would leave the staging bytes serving production traffic.
    Positive control: the same canary beside a production champion is admitted."""
    from components.steps.promote_canary import with_canary

    for item in _production(services):
        if "canary" in item.obj["spec"]:
            continue
        champion, new = _versions(item)
        staging = copy.deepcopy(champion)
        staging["metadata"]["labels"][f"{PREFIX}/stage"] = "staging"
        update = with_canary(champion, new, champion_version=1, canary_version=2, percent=1)
        assert rule.violations(update, user=item.user, old=champion) == [], item.name
        refused = rule.violations(update, user=item.user, old=staging)
        assert any("moves to production with a canary" in m for m in refused), (item.name, refused)
        serverless = copy.deepcopy(new)
        serverless["spec"]["predictor"]["canaryTrafficPercent"] = 1
        refused = rule.violations(serverless, user=item.user, old=staging)
        assert any("moves to production with a canary" in m for m in refused), (item.name, refused)
        assert rule.violations(serverless, user=item.user, old=champion) == [], item.name


def test_the_champion_beside_a_canary_keeps_its_bytes_and_runtime(
    rule: admission.Policy, services: list[Rendered]
) -> None:
    """The review's variant 3c: the champion's storageUri changed with its variable kept."""
    from components.steps.promote_canary import with_canary

    for item in _production(services):
        if "canary" in item.obj["spec"]:
            continue
        champion, new = _versions(item)
        update = with_canary(champion, new, champion_version=1, canary_version=2, percent=10)
        update["spec"]["predictor"]["model"]["storageUri"] = "s3://models/fraud/mine/"
        refused = rule.violations(update, user=item.user, old=champion)
        assert any("changed beside a canary" in m for m in refused), (item.name, refused)


def test_the_audit_is_reviewed_as_gatekeepers_with_no_operation(rule: admission.Policy) -> None:
    """mlops.admission models Gatekeeper's audit (no user, no stored object) with no operation, as the
    audit sends it; an admission review has one."""
    review: dict[str, Any] = {}

    class Spy:
        def eval_document(self, query: str, document: dict[str, Any]) -> list[Any]:
            review.update(document["review"])
            return []

    spy = admission.Policy(template=rule.template, constraint=rule.constraint)
    spy.__dict__["engine"] = Spy()
    spy.violations({"kind": "InferenceService", "metadata": {}}, user=None)
    assert "operation" not in review
    spy.violations({"kind": "InferenceService", "metadata": {}}, user="alice")
    assert review["operation"] == "CREATE"


def _transformer_command(service: dict[str, Any]) -> None:
    service["spec"]["transformer"]["containers"][0]["command"] = ["python", "-m", "http.server"]


def _transformer_image(service: dict[str, Any]) -> None:
    service["spec"]["transformer"]["containers"][0]["image"] = "registry.mlops.internal/mine/answers:1"


def _explainer(service: dict[str, Any]) -> None:
    service["spec"]["explainer"] = {"containers": [{"name": "x", "image": "registry.mlops.internal/x:1"}]}


REQUEST_PATH: dict[str, Callable[[dict[str, Any]], None]] = {
    "a transformer of another command": _transformer_command,
    "a transformer of another image": _transformer_image,
    "an explainer": _explainer,
}


@pytest.mark.parametrize("change", sorted(REQUEST_PATH))
def test_only_promotes_transformer_stands_in_front_of_the_predictor(
    rule: admission.Policy, services: list[Rendered], change: str
) -> None:
    """The review's MEDIUM 3: a transformer of the member's own code could answer the caller without
    calling the checked predictor. Positive control: promote's own transformer is admitted (above)."""
    with_transformer = [item for item in services if "transformer" in item.obj["spec"]]
    assert with_transformer
    for item in with_transformer:
        changed = copy.deepcopy(item.obj)
        REQUEST_PATH[change](changed)
        refused = rule.violations(changed, user=item.user)
        assert any("transformer" in m or "explainer" in m for m in refused), (item.name, refused)
