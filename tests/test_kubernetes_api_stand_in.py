"""The Kubernetes API stand-in (tests/kubernetes_api_stand_in.py) on known cases: what it stores,
prunes and refuses is what the real API server does with a structural CRD, checked here on bodies
whose answer is known, so the tests that lean on it (promote, the TrainJob launcher) can trust it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes_api_stand_in import InferenceServiceApi, Refused, TrainerStandIn, admit
from tests.loopback_http import serving


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


def test_every_unknown_field_is_named_even_beside_a_value_the_schema_refuses(schemas_dir: Path) -> None:
    """The strict decoder names every unknown field ('strict decoding error: unknown field "a",
    unknown field "b"'), before any value is validated: a NetworkPolicy with two misspelt fields and
    a podSelector that is no object is 400 naming both, not 422. The stand-in stopped at the first
    schema error that was not an unknown field, so the second went unnamed and the answer was 422.
    Control: without Strict the two are pruned and the bad value is 422, as the server answers."""
    body = _network_policy(form=[{"podSelector": {}}])
    body["spec"] |= {"podSelector": "all", "policyType": ["Ingress"]}  # `policyTypes` misspelt too
    named = r'unknown field "spec\.ingress\[0\]\.form", unknown field "spec\.policyType"$'
    with pytest.raises(Refused, match=r"strict decoding error: " + named) as refused:
        admit(body, "Strict")
    assert refused.value.code == 400
    with pytest.raises(Refused, match=r'NetworkPolicy\.networking\.k8s\.io "m-callers" is invalid: spec\.podSelector'):
        admit(body)


@pytest.fixture()
def api(schemas_dir: Path) -> Iterator[HTTPConnection]:
    """The HTTP stand-in, reached with raw requests: the kubernetes client never sends the wrong ones."""
    InferenceServiceApi.reset()
    with serving(InferenceServiceApi) as server:
        yield HTTPConnection("127.0.0.1", server.server_port, timeout=30)


NETWORK = "/apis/networking.k8s.io/v1/namespaces/fraud/networkpolicies"
SERVICES = "/apis/serving.kserve.io/v1beta1/namespaces/fraud/inferenceservices"


def _send(api: HTTPConnection, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    api.request(method, f"{path}?fieldValidation=Strict", json.dumps(body), {"Content-Type": "application/json"})
    response = api.getresponse()
    answer: dict[str, Any] = json.loads(response.read())
    return response.status, answer


def test_a_create_of_a_name_that_exists_is_409_already_exists_and_the_live_object_stays(
    api: HTTPConnection,
) -> None:
    """The real server answers a create of an existing name 409 AlreadyExists
    ('networkpolicies.networking.k8s.io "m-callers" already exists'); the stand-in overwrote it.
    Control: the first create is 201."""
    for body in (_network_policy(), _service()):
        path = NETWORK if body["kind"] == "NetworkPolicy" else SERVICES
        assert _send(api, "POST", path, body)[0] == 201
        live = json.loads(json.dumps(InferenceServiceApi.objects[f"{path}/{body['metadata']['name']}"]))
        again = json.loads(json.dumps(body))
        again["metadata"]["labels"] = {"second": "writer"}
        code, status = _send(api, "POST", path, again)
        resource = path.rpartition("/")[2] + "." + body["apiVersion"].rpartition("/")[0]
        assert (code, status["reason"]) == (409, "AlreadyExists")
        assert status["message"] == f'{resource} "{body["metadata"]["name"]}" already exists'
        assert InferenceServiceApi.objects[f"{path}/{body['metadata']['name']}"] == live


def test_a_body_whose_namespace_or_name_is_not_the_urls_is_400(api: HTTPConnection) -> None:
    """The create and update handlers hold the decoded object to the URL: another namespace is 400
    ('the namespace of the provided object does not match the namespace sent on the request'), an
    empty one takes the URL's; a replace whose name is not the URL's is 400 ('the name of the object
    (x) does not match the name on the URL (y)'). The stand-in stored either under the URL's path."""
    elsewhere = _network_policy()
    elsewhere["metadata"]["namespace"] = "payments"
    code, status = _send(api, "POST", NETWORK, elsewhere)
    assert (code, status["reason"]) == (400, "BadRequest") and InferenceServiceApi.objects == {}
    assert status["message"] == "the namespace of the provided object does not match the namespace sent on the request"
    unset = _network_policy()
    del unset["metadata"]["namespace"]
    assert _send(api, "POST", NETWORK, unset)[0] == 201  # control: the URL's namespace fills it
    live = InferenceServiceApi.objects[f"{NETWORK}/m-callers"]
    assert live["metadata"]["namespace"] == "fraud"
    renamed = _network_policy()
    renamed["metadata"] |= {"name": "other-callers", "resourceVersion": "1"}
    code, status = _send(api, "PUT", f"{NETWORK}/m-callers", renamed)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == "the name of the object (other-callers) does not match the name on the URL (m-callers)"
    moved = _network_policy()
    moved["metadata"] |= {"namespace": "payments", "resourceVersion": "1"}
    code, status = _send(api, "PUT", f"{NETWORK}/m-callers", moved)
    assert (code, status["message"]) == (400, "the namespace of the provided object does not match the namespace "
                                         "sent on the request")  # fmt: skip
    assert InferenceServiceApi.objects[f"{NETWORK}/m-callers"] == live
    same = _network_policy()
    same["metadata"]["resourceVersion"] = "1"
    assert _send(api, "PUT", f"{NETWORK}/m-callers", same)[0] == 200  # control: the replace the URL names


def test_a_post_to_an_object_path_or_a_put_to_a_collection_is_405(api: HTTPConnection) -> None:
    """The routes are POST on the collection and PUT on the object; the server answers anything else
    405 MethodNotAllowed ('the server does not allow this method on the requested resource'). The
    stand-in created the body's name whatever object path it was posted to."""
    code, status = _send(api, "POST", f"{NETWORK}/m-callers", _network_policy())
    assert (code, status["reason"]) == (405, "MethodNotAllowed") and InferenceServiceApi.objects == {}
    assert status["message"] == "the server does not allow this method on the requested resource"
    assert _send(api, "POST", f"{SERVICES}/m", _service())[0] == 405
    assert _send(api, "POST", NETWORK, _network_policy())[0] == 201  # control: the collection
    replaced = _network_policy()
    replaced["metadata"]["resourceVersion"] = "1"
    assert _send(api, "PUT", NETWORK, replaced)[0] == 405
    assert _send(api, "PUT", f"{NETWORK}/m-callers", replaced)[0] == 200  # control: the object
