"""The Kubernetes API stand-in (tests/kubernetes_api_stand_in.py) on known cases: what it stores,
prunes and refuses is what the real API server does with a structural CRD, checked here on bodies
whose answer is known, so the tests that lean on it (promote, the TrainJob launcher) can trust it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes_api_stand_in import Refused, TrainerStandIn, admit


def _service(**predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "m",
            "namespace": "fraud",
            "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "triton"}, "storageUri": "s3://b/m"}, **predictor}},
        "status": {"url": "http://m.fraud"},
    }


def test_a_valid_body_is_stored_as_sent_without_its_status(schemas_dir: Path) -> None:
    """Positive control: nothing pruned, nothing warned; status belongs to the status subresource."""
    body = _service(minReplicas=1)
    stored, warnings = admit(body)
    assert warnings == [] and "status" not in stored
    assert stored["spec"] == body["spec"] and stored["metadata"] == body["metadata"]


def test_an_unknown_field_is_pruned_with_a_warning_by_default_and_refused_when_strict(schemas_dir: Path) -> None:
    """issue 28: plain jsonschema let an unknown field through and the stand-in stored it."""
    body = _service(minReplica=1)  # misspelt minReplicas
    stored, warnings = admit(body)
    assert "minReplica" not in stored["spec"]["predictor"]
    assert warnings == ['unknown field "spec.predictor.minReplica"']
    assert admit(body, "Ignore")[1] == [] and "minReplica" not in admit(body, "Ignore")[0]["spec"]["predictor"]
    with pytest.raises(Refused, match=r'strict decoding error: unknown field "spec\.predictor\.minReplica"') as refused:
        admit(body, "Strict")
    assert refused.value.code == 400


def test_a_value_the_schema_refuses_is_422_in_every_mode(schemas_dir: Path) -> None:
    for mode in (None, "Warn", "Strict"):
        with pytest.raises(
            Refused, match=r'InferenceService\.serving\.kserve\.io "m" is invalid: spec\.predictor\.minReplicas'
        ):
            admit(_service(minReplicas="one"), mode)


def test_the_trainer_stand_in_moves_status_as_trainer_does_and_holds_it_to_the_crd(schemas_dir: Path) -> None:
    from pipelines.trainer import API_VERSION, RUNTIMES

    body = {"apiVersion": API_VERSION, "kind": "TrainJob", "metadata": {"generateName": "t-", "namespace": "fraud"},
            "spec": {"runtimeRef": {"name": RUNTIMES[0]}, "trainer": {"numNodes": 2}}}  # fmt: skip
    for succeeds, last in ((True, "Complete"), (False, "Failed")):
        ran: list[str] = []

        def run(job: dict[str, Any], ran: list[str] = ran, succeeds: bool = succeeds) -> bool:
            ran.append(job["metadata"]["name"])
            return succeeds

        api = TrainerStandIn(run)
        name = api.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "fraud", "trainjobs", body)[
            "metadata"
        ]["name"]
        reads = [api.get_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "fraud", "trainjobs", name)
                 for _ in range(4)]  # fmt: skip
        assert "status" not in reads[0] and reads[1]["status"]["jobsStatus"][0]["active"] == 1 and ran == [name]
        (condition,) = reads[2]["status"]["conditions"]
        assert (condition["type"], condition["status"]) == (last, "True") and reads[3] == reads[2]
        assert api.seen[name] == ["none", "active", last, last]


def _network_policy(**rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "m-callers", "namespace": "fraud"},
        "spec": {"podSelector": {"matchLabels": {"serving.kserve.io/inferenceservice": "m"}},
                 "policyTypes": ["Ingress"], "ingress": [{"ports": [{"protocol": "TCP", "port": 8012}], **rule}]},
    }  # fmt: skip


def _authorization_policy(**rule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "m-callers", "namespace": "fraud"},
        "spec": {"action": "ALLOW", "selector": {"matchLabels": {"serving.kserve.io/inferenceservice": "m"}},
                 "rules": [{"from": [{"source": {"namespaces": ["fraud"]}}], **rule}]},
    }  # fmt: skip


def test_promotes_authorization_kinds_are_held_to_their_schemas_unknown_fields_refused_when_strict(
    schemas_dir: Path,
) -> None:
    """issue 29: promote now applies an Istio AuthorizationPolicy (its CRD schema from the schema
    folder) and a NetworkPolicy (Kubernetes' own schema) beside each InferenceService. Positive
    controls first; then a misspelt field, refused under Strict as the real decoder refuses it and
    pruned with a warning otherwise; then a value each schema refuses, 422."""
    for body in (_network_policy(), _authorization_policy()):
        stored, warnings = admit(body, "Strict")
        assert warnings == [] and stored == body
    misspelt = _network_policy(form=[{"podSelector": {}}])  # `from` misspelt
    with pytest.raises(
        Refused, match=r'NetworkPolicy .*strict decoding error: unknown field "spec\.ingress\[0\]\.form"'
    ):
        admit(misspelt, "Strict")
    stored, warnings = admit(misspelt)
    assert "form" not in stored["spec"]["ingress"][0] and warnings == ['unknown field "spec.ingress[0].form"']
    typo = _authorization_policy(when_=[{"key": "request.headers[x]", "values": ["1"]}])
    with pytest.raises(Refused, match=r'strict decoding error: unknown field "spec\.rules\[0\]\.when_"') as refused:
        admit(typo, "Strict")
    assert refused.value.code == 400
    with pytest.raises(Refused, match=r'NetworkPolicy\.networking\.k8s\.io "m-callers" is invalid: spec\.podSelector'):
        admit({**_network_policy(), "spec": {**_network_policy()["spec"], "podSelector": "all"}}, "Strict")
    bad_action = _authorization_policy()
    bad_action["spec"]["action"] = "PERMIT"
    with pytest.raises(Refused, match=r'AuthorizationPolicy\.security\.istio\.io "m-callers" is invalid: spec\.action'):
        admit(bad_action)
