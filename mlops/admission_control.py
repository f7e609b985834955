"""The positive control of the cluster's admission: proof, before each `--admission cluster` apply,
that Gatekeeper is live and judging.

Where no policy folder travels (`mlops canary-analysis` in a pod), `mlops promote` trusts the API
server's dryRun=All to run the installed Gatekeeper. A dry run that passes proves nothing on its own:
Gatekeeper's webhook fails open by default (its chart's `validatingWebhookFailurePolicy: Ignore`), so
with its pods down, or with the Constraints not installed, every object is admitted. So the first
dry run sends a copy of the service that one installed Constraint must refuse (the predictor asks
for the node's network, which `no-node-access` denies to every workload). Refused by Gatekeeper
with that Constraint's name: admission is live, and the real dry runs that follow mean something.
Admitted, or refused by anything else: nothing is applied, and the error says which, as a transient
failure (the hourly run tries again once Gatekeeper answers).

A test holds the control to the policy file: manifests/policies/pod-security.yaml's Constraint of
this name denies `control_object` of a rendered service, and admits the service itself.
"""

from __future__ import annotations

import copy
from typing import Any

from components.errors import ComponentError, TransientError

__all__ = ["CONTROL_CONSTRAINT", "GATEKEEPER_WEBHOOK", "control_object", "judge_control"]

CONTROL_CONSTRAINT = "no-node-access"
"""The Constraint (manifests/policies/pod-security.yaml) that must refuse the control object."""
GATEKEEPER_WEBHOOK = "validation.gatekeeper.sh"
"""The name of Gatekeeper's validating webhook, as the API server quotes it in a denial."""
CONTROL_ANNOTATION = "mlops.private-platform.io/admission-control"


def control_object(service: dict[str, Any]) -> dict[str, Any]:
    """A copy of the InferenceService whose predictor asks for the node's network namespace: valid
    against KServe's schema (the predictor is a PodSpec), refused by `CONTROL_CONSTRAINT`."""
    control = copy.deepcopy(service)
    control["spec"]["predictor"]["hostNetwork"] = True
    annotations = control["metadata"].setdefault("annotations", {})
    annotations[CONTROL_ANNOTATION] = "a dry run only: refused by admission on purpose, never stored"
    return control


def judge_control(refusal: ComponentError | None, where: str) -> None:
    """Raise unless `refusal` is Gatekeeper refusing the control through `CONTROL_CONSTRAINT`.

    `refusal` is the error the dry run of `control_object` raised (None: it was admitted)."""
    fix = (
        "check that Gatekeeper's pods in gatekeeper-system are ready and the platform's Constraints are installed "
        "(kubectl get constraints), and install Gatekeeper with validatingWebhookFailurePolicy=Fail "
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
    if f'admission webhook "{GATEKEEPER_WEBHOOK}"' not in said or f"[{CONTROL_CONSTRAINT}]" not in said:
        if isinstance(refusal, TransientError) or "admission webhook" not in said:
            raise refusal  # the API server itself refused (RBAC, schema, unreachable): its own words and class
        raise TransientError(
            "promote",
            f"the cluster's admission ({where}) refused the control service, but not through Gatekeeper's "
            f"{CONTROL_CONSTRAINT}: {said}",
            fix,
        )
