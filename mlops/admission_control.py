"""The positive control of the cluster's admission: proof, before each `--admission cluster` apply,
that Gatekeeper is live, judging, and fails closed.

Where no policy folder travels (`mlops canary-analysis` in a pod), `mlops promote` trusts the API
server's dryRun=All to run the installed Gatekeeper. A dry run that passes proves nothing on its own:
Gatekeeper's webhook fails open by default (its chart's `validatingWebhookFailurePolicy: Ignore`), so
with its pods down, or with the Constraints not installed, every object is admitted. Two checks, first:

- the configuration (`judge_webhooks`): Gatekeeper's ValidatingWebhookConfiguration
  (serving_api.GATEKEEPER_CONFIGURATION) must hold GATEKEEPER_WEBHOOK and every webhook in it must say
  `failurePolicy: Fail`; else a webhook that goes down between the control and the apply admits the
  apply unjudged. A platform installed so is misconfigured, a permanent failure (exit 2) whose fix is
  `validatingWebhookFailurePolicy=Fail` (docs/install.md), not something the next run outwaits;
- the control (`judge_control`): the first dry run sends a copy of the service that one installed
  Constraint must refuse (the predictor asks for the node's network, which `no-node-access` denies to
  every workload). Only Gatekeeper's own denial counts, matched by its structure: a 403 whose message
  begins `admission webhook "<GATEKEEPER_WEBHOOK>" denied the request:` and holds a violation line
  beginning `[no-node-access]`. Admitted, or refused by anything else: nothing is applied, and the error
  says which, as a transient failure (the hourly run tries again once Gatekeeper answers).

A test holds the control to the policy file: manifests/policies/pod-security.yaml's Constraint of
this name denies `control_object` of a rendered service, and admits the service itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from components.errors import ComponentError, TransientError
from components.steps.serving_api import GATEKEEPER_CONFIGURATION

__all__ = [
    "CONTROL_CONSTRAINT",
    "GATEKEEPER_CONFIGURATION",
    "GATEKEEPER_WEBHOOK",
    "control_object",
    "denial",
    "judge_control",
    "judge_webhooks",
]

CONTROL_CONSTRAINT = "no-node-access"
"""The Constraint (manifests/policies/pod-security.yaml) that must refuse the control object."""
GATEKEEPER_WEBHOOK = "validation.gatekeeper.sh"
"""The name of Gatekeeper's validating webhook, as the API server quotes it in a denial."""
DENIED = f'admission webhook "{GATEKEEPER_WEBHOOK}" denied the request:'
"""How the API server begins the message of a denial by Gatekeeper's webhook (its Status message)."""
FAIL_CLOSED = "validatingWebhookFailurePolicy=Fail"
CONTROL_ANNOTATION = "mlops.private-platform.io/admission-control"


def control_object(service: dict[str, Any]) -> dict[str, Any]:
    """A copy of the InferenceService whose predictor asks for the node's network namespace: valid
    against KServe's schema (the predictor is a PodSpec), refused by `CONTROL_CONSTRAINT`."""
    control = copy.deepcopy(service)
    control["spec"]["predictor"]["hostNetwork"] = True
    annotations = control["metadata"].setdefault("annotations", {})
    annotations[CONTROL_ANNOTATION] = "a dry run only: refused by admission on purpose, never stored"
    return control


def judge_webhooks(configuration: dict[str, Any] | None, where: str) -> None:
    """Raise (permanent: the platform is misconfigured) unless Gatekeeper's ValidatingWebhookConfiguration
    exists, holds GATEKEEPER_WEBHOOK and every webhook in it fails closed (`failurePolicy: Fail`)."""
    fix = (
        f"install Gatekeeper with {FAIL_CLOSED} (docs/install.md: `helm upgrade gatekeeper ... --set "
        f"{FAIL_CLOSED}`), then run again; nothing was applied or recorded"
    )
    if configuration is None:
        raise ComponentError(
            "promote",
            f"the cluster ({where}) has no ValidatingWebhookConfiguration {GATEKEEPER_CONFIGURATION}: Gatekeeper "
            "is not installed, so no dry run is judged by the platform's policies",
            fix,
        )
    webhooks = configuration.get("webhooks") or []
    names = [str(webhook.get("name", "")) for webhook in webhooks]
    if GATEKEEPER_WEBHOOK not in names:
        raise ComponentError(
            "promote",
            f"the cluster's {GATEKEEPER_CONFIGURATION} ({where}) holds no webhook {GATEKEEPER_WEBHOOK} "
            f"(it holds {names or 'none'}): nothing there runs the platform's policies",
            fix,
        )
    # admissionregistration.k8s.io/v1 defaults an omitted failurePolicy to Fail (the server returns it set)
    open_ = [f"{name} ({webhook.get('failurePolicy', 'Fail')})" for name, webhook in zip(names, webhooks, strict=True)
             if webhook.get("failurePolicy", "Fail") != "Fail"]  # fmt: skip
    if open_:
        raise ComponentError(
            "promote",
            f"Gatekeeper's webhooks on the cluster ({where}) fail open: {', '.join(open_)} in "
            f"{GATEKEEPER_CONFIGURATION}; with its pods down every object is admitted unjudged, so a dry run "
            "that passes proves nothing",
            fix,
        )


def denial(refusal: ComponentError) -> tuple[int, str] | None:
    """(HTTP status, the API server's message) behind a refusal a Cluster call raised, read from the
    Kubernetes client's ApiException it was raised from; None when the server gave no such answer."""
    from kubernetes.client.exceptions import ApiException

    cause = refusal.__cause__
    if not isinstance(cause, ApiException):
        return None
    try:
        message = json.loads(cause.body)["message"]
    except (TypeError, ValueError, KeyError):
        return None
    return (int(cause.status), message) if isinstance(message, str) else None


def _gatekeeper_refused_the_control(refusal: ComponentError) -> bool:
    """A 403 whose message is Gatekeeper's denial (DENIED first) with a line of CONTROL_CONSTRAINT's."""
    answer = denial(refusal)
    if answer is None or answer[0] != 403 or not answer[1].startswith(DENIED):
        return False
    violations = answer[1].removeprefix(DENIED).strip().splitlines()
    return any(line.startswith(f"[{CONTROL_CONSTRAINT}]") for line in violations)


def judge_control(refusal: ComponentError | None, where: str) -> None:
    """Raise unless `refusal` is Gatekeeper refusing the control through `CONTROL_CONSTRAINT`.

    `refusal` is the error the dry run of `control_object` raised (None: it was admitted)."""
    fix = (
        "check that Gatekeeper's pods in gatekeeper-system are ready and the platform's Constraints are installed "
        f"(kubectl get constraints), and install Gatekeeper with {FAIL_CLOSED} "
        "(docs/install.md); nothing was applied or recorded, and the next run retries"
    )
    if refusal is None:
        raise TransientError(
            "promote",
            f"the cluster's admission ({where}) admitted a service that asks for the node's network, which the "
            f"Constraint {CONTROL_CONSTRAINT} refuses: Gatekeeper is not judging (its webhook is down and fails "
            "open, or the Constraint is not installed), so a dry run that passes proves nothing",
            fix,
        )
    said = refusal.problem
    if not _gatekeeper_refused_the_control(refusal):
        if isinstance(refusal, TransientError) or "admission webhook" not in said:
            raise refusal  # the API server itself refused (RBAC, schema, unreachable): its own words and class
        raise TransientError(
            "promote",
            f"the cluster's admission ({where}) refused the control service, but not through Gatekeeper's "
            f"{CONTROL_CONSTRAINT}: {said}",
            fix,
        )
