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
