"""Who may apply a production sign-off: the person named in it, or an applier acting on a recorded one.

Issue 32 item 4: `--signed-off-by` names an authenticated identity. The admission policy
(manifests/policies/promotion-guard.yaml, Constraint production-promotion-evidence) compares the
sign-off with the requester (the API server's `userInfo.username`): a person can only sign off as
themselves. Some identities apply production services on behalf of a sign-off already recorded in the
serving history and never sign off themselves: the GitOps agent that syncs a tenant's `mlops promote
--out` folder (Argo CD's or Flux's), a tenant's canary analysis (its ServiceAccount, ANALYST_SERVICE_ACCOUNT, which the
CronWorkflow runs as) and KServe's controller, which updates the services it reconciles.

APPLIERS is the one list of them, as full-match regular expressions (RE2 and Python's `re` agree on
these); `make golden` writes it into the Constraint's `appliers` parameter
(mlops.admission_parameters), and `mlops promote` checks the kubeconfig's identity against it before
it applies anything (mlops/rollout.py).
"""

from __future__ import annotations

import re

from components.errors import ComponentError

__all__ = [
    "ANALYST_SERVICE_ACCOUNT",
    "APPLIERS",
    "FLUX_APPLIER",
    "GITOPS_APPLIER",
    "KSERVE_CONTROLLER",
    "STEP",
    "check_signer",
    "is_applier",
    "promotion_appliers",
    "same_identity",
]

STEP = "promote"
ANALYST_SERVICE_ACCOUNT = "canary-analyst"
"""The ServiceAccount a tenant's scheduled canary analysis runs as (in the tenant's namespace)."""
GITOPS_APPLIER = "system:serviceaccount:argocd:argocd-application-controller"
FLUX_APPLIER = "system:serviceaccount:flux-system:kustomize-controller"
"""The GitOps agents that apply an `mlops promote --out` folder (with Argo CD's sync impersonation, or
Flux's per-tenant serviceAccountName, name that identity here instead)."""
KSERVE_CONTROLLER = "system:serviceaccount:kserve:kserve-controller-manager"
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"

APPLIERS: tuple[str, ...] = (  # the names hold no regex metacharacters: they are written as they are
    GITOPS_APPLIER,
    FLUX_APPLIER,
    f"system:serviceaccount:{_DNS_LABEL}:{ANALYST_SERVICE_ACCOUNT}",
    KSERVE_CONTROLLER,
)
"""Full-match patterns of the identities that apply recorded sign-offs (the policy anchors them too)."""


def promotion_appliers() -> list[str]:
    """The Constraint's `appliers` parameter (mlops.admission_parameters writes it)."""
    return list(APPLIERS)


def is_applier(user: str, appliers: tuple[str, ...] | list[str] = APPLIERS) -> bool:
    return any(re.fullmatch(pattern, user.strip()) for pattern in appliers)


def same_identity(one: str, other: str) -> bool:
    """Trimmed and case-insensitive, as the policy compares them (lower(trim_space(...)))."""
    return one.strip().casefold() == other.strip().casefold()


def check_signer(identity: str, signed_off_by: str, appliers: tuple[str, ...] | list[str] = APPLIERS) -> None:
    """Refuse (exit 2) a production sign-off the requester `identity` may not apply: a person signs off
    only as themselves; an applier applies any recorded sign-off, but a sign-off never names an applier."""
    who = signed_off_by.strip()
    if not who:
        return  # no sign-off at all is the admission policy's to refuse, with Gatekeeper's message
    if is_applier(who, appliers):
        raise ComponentError(
            STEP,
            f"--signed-off-by {who} names a service account that applies sign-offs, not a person who reviewed "
            "the version",
            "pass --signed-off-by <the reviewer's identity, as the cluster authenticates them>",
        )
    if is_applier(identity, appliers) or same_identity(identity, who):
        return
    raise ComponentError(
        STEP,
        f"the cluster knows you as {identity}, and you can only sign off as yourself, not as {who}",
        f"ask {who} to run the promotion, or sign off yourself with --signed-off-by {identity} if you reviewed it "
        "(and did not train it)",
    )
