"""The positive control of `--admission cluster` (mlops/admission_control.py) held to the policy files:
the Constraint it names exists, refuses the control copy of every InferenceService `mlops promote`
renders, and admits the service itself; the judgement of a dry run's answer on known cases, matched by
the structure of Gatekeeper's denial; and of Gatekeeper's webhook configuration, which must fail closed."""

from __future__ import annotations

import json

import pytest

from components.errors import ComponentError, TransientError
from mlops import admission, admission_control
from tests.kubernetes_api_stand_in import gatekeeper_configuration
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


def _refusal(message: str, *, status: int = 403, transient: bool = False) -> ComponentError:
    """A refusal as mlops/kube.py raises it: its words, raised from the client's ApiException carrying the
    API server's Status (what the judgement reads)."""
    from kubernetes.client.exceptions import ApiException

    answer = ApiException(status=status, reason="Forbidden")
    answer.body = json.dumps({"kind": "Status", "status": "Failure", "code": status, "message": message})
    kind = TransientError if transient else ComponentError
    refusal = kind("promote", f"the Kubernetes API (kind) refused to apply InferenceService fraud/x: {status} "
                   f"Forbidden: {message}", "-")  # fmt: skip
    refusal.__cause__ = answer
    return refusal


GATEKEEPER = f'admission webhook "{admission_control.GATEKEEPER_WEBHOOK}" denied the request: '


def test_only_gatekeeper_refusing_through_the_control_constraint_proves_admission_live() -> None:
    admission_control.judge_control(_refusal(GATEKEEPER + "[no-node-access] hostNetwork is not allowed"), "kind")
    several = GATEKEEPER + "[internal-registry-only] image x\n[no-node-access] hostNetwork is not allowed"
    admission_control.judge_control(_refusal(several), "kind")  # Gatekeeper joins its violations, one a line

    with pytest.raises(TransientError, match="admitted a service that asks for the node's network"):
        admission_control.judge_control(None, "kind")  # Gatekeeper down under failurePolicy Ignore
    with pytest.raises(TransientError, match="not through Gatekeeper's no-node-access"):  # another Constraint only
        admission_control.judge_control(_refusal(GATEKEEPER + "[internal-registry-only] image x"), "kind")
    with pytest.raises(TransientError, match="not through Gatekeeper's"):  # another webhook
        admission_control.judge_control(_refusal('admission webhook "x.kserve.io" denied: [no-node-access]'), "kind")
    # The substrings anywhere are not Gatekeeper's denial: each of these held both, and passed the old check.
    quoting = 'admission webhook "x.kserve.io" denied the request: ' + GATEKEEPER + "[no-node-access] x"
    mentioning = GATEKEEPER + "[internal-registry-only] image x (see also [no-node-access])"
    for message, status in ((quoting, 403), (mentioning, 403), (GATEKEEPER + "[no-node-access] x", 400)):
        with pytest.raises(TransientError, match="not through Gatekeeper's"):
            admission_control.judge_control(_refusal(message, status=status), "kind")
    bare = ComponentError("promote", GATEKEEPER + "[no-node-access] x", "-")  # the words, no answer behind them
    with pytest.raises(TransientError, match="not through Gatekeeper's"):
        admission_control.judge_control(bare, "kind")

    rbac = _refusal("403 Forbidden: inferenceservices is forbidden")  # the server's own answer, as it was
    with pytest.raises(ComponentError) as raised:
        admission_control.judge_control(rbac, "kind")
    assert raised.value is rbac
    outage = _refusal("503 Service Unavailable", status=503, transient=True)
    with pytest.raises(TransientError) as unreachable:
        admission_control.judge_control(outage, "kind")
    assert unreachable.value is outage


def test_gatekeeper_must_be_installed_to_fail_closed_before_a_dry_run_is_trusted() -> None:
    """Positive control: the chart installed with validatingWebhookFailurePolicy=Fail passes. Forbidden:
    the chart's default (Ignore) on the validation webhook, or on its ignore-label check, no Gatekeeper, or a
    configuration without Gatekeeper's webhook: each a permanent failure (exit 2) naming the fix."""
    admission_control.judge_webhooks(gatekeeper_configuration("Fail"), "kind")

    fails_open = gatekeeper_configuration("Ignore")
    label_check_open = gatekeeper_configuration("Fail")
    label_check_open["webhooks"][1]["failurePolicy"] = "Ignore"
    renamed = gatekeeper_configuration("Fail")
    renamed["webhooks"] = [w for w in renamed["webhooks"] if w["name"] != admission_control.GATEKEEPER_WEBHOOK]
    cases = [
        (fails_open, "fail open: validation.gatekeeper.sh (Ignore)"),
        (label_check_open, "fail open: check-ignore-label.gatekeeper.sh (Ignore)"),
        (None, "Gatekeeper is not installed"),
        (renamed, "holds no webhook validation.gatekeeper.sh"),
    ]
    for configuration, said in cases:
        with pytest.raises(ComponentError) as refused:
            admission_control.judge_webhooks(configuration, "kind")
        assert not isinstance(refused.value, TransientError), "a misconfigured platform is permanent: exit 2"
        assert said in refused.value.problem and "validatingWebhookFailurePolicy=Fail" in refused.value.fix
