"""The platform's Gatekeeper policy files as every policy test loads them (issue 30: the tests had
grown a loader each). A policy is read from manifests/policies, where the overlays install it from,
and compiled by the real OPA engine (mlops.admission)."""

from __future__ import annotations

import functools

from mlops import admission

__all__ = ["POLICIES", "policy"]

POLICIES = admission.POLICY_DIR


@functools.cache
def policy(file: str) -> admission.Policy:
    """The ConstraintTemplate in manifests/policies/`file` with its Constraint, which must be of the
    kind the template declares (a Constraint of another kind is one Gatekeeper never enforces).
    Compiled once for the session and shared: a test that changes one builds its own admission.Policy."""
    rule = admission.policy(POLICIES / file)
    assert rule.template["spec"]["crd"]["spec"]["names"]["kind"] == rule.constraint["kind"], file
    return rule
