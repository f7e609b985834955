"""The positive control of `--admission cluster` (mlops/admission_control.py) held to the policy files:
the Constraint it names exists, refuses the control copy of every InferenceService `mlops promote`
renders, and admits the service itself; and the judgement of a dry run's answer on known cases."""

from __future__ import annotations

import pytest

from components.errors import ComponentError, TransientError
from mlops import admission, admission_control
from tests.policies.platform_objects import inference_services


def test_the_control_constraint_refuses_each_rendered_service_made_a_control_and_admits_the_service() -> None:
    policies = admission.PolicySet(admission.POLICY_DIR)
    names = {rule.name for rule in policies.policies}
    assert admission_control.CONTROL_CONSTRAINT in names, sorted(names)
    rendered = inference_services()
    assert rendered
    for each in rendered:
        tag = f"[{admission_control.CONTROL_CONSTRAINT}]"
        assert not [v for v in policies.violations(each.obj, user=each.user) if v.startswith(tag)], each.name
        denied = policies.violations(admission_control.control_object(each.obj), user=each.user)
        assert any(v.startswith(tag) for v in denied), (each.name, denied)
        assert "hostNetwork" not in each.obj["spec"]["predictor"], "the control changed the service it copies"


def _refusal(message: str, *, transient: bool = False) -> ComponentError:
    kind = TransientError if transient else ComponentError
    return kind("promote", f"the Kubernetes API (kind) refused to apply InferenceService fraud/x: {message}", "-")


GATEKEEPER = 'admission webhook "validation.gatekeeper.sh" denied the request: '


def test_only_gatekeeper_refusing_through_the_control_constraint_proves_admission_live() -> None:
    admission_control.judge_control(_refusal(GATEKEEPER + "[no-node-access] hostNetwork is not allowed"), "kind")

    with pytest.raises(TransientError, match="admitted a service that asks for the node's network"):
        admission_control.judge_control(None, "kind")  # Gatekeeper down under failurePolicy Ignore
    with pytest.raises(TransientError, match="not through Gatekeeper's no-node-access"):  # another Constraint only
        admission_control.judge_control(_refusal(GATEKEEPER + "[internal-registry-only] image x"), "kind")
    with pytest.raises(TransientError, match="not through Gatekeeper's"):  # another webhook
        admission_control.judge_control(_refusal('admission webhook "x.kserve.io" denied: [no-node-access]'), "kind")

    rbac = _refusal("403 Forbidden: inferenceservices is forbidden")  # the server's own answer, as it was
    with pytest.raises(ComponentError) as raised:
        admission_control.judge_control(rbac, "kind")
    assert raised.value is rbac
    outage = _refusal("503 Service Unavailable", transient=True)
    with pytest.raises(TransientError) as unreachable:
        admission_control.judge_control(outage, "kind")
    assert unreachable.value is outage
