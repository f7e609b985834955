"""The platform's Gatekeeper policy files as every policy test loads them (issue 30: the tests had
grown a loader each). A policy is read from manifests/policies, where the overlays install it from,
and compiled by the real OPA engine (mlops.admission)."""

from __future__ import annotations

import copy
import functools

from mlops import admission

__all__ = ["POLICIES", "installed_in_prod", "policy", "without_paragraph"]

POLICIES = admission.POLICY_DIR


@functools.cache
def policy(file: str) -> admission.Policy:
    """The ConstraintTemplate in manifests/policies/`file` with its Constraint, which must be of the
    kind the template declares (a Constraint of another kind is one Gatekeeper never enforces).
    Compiled once for the session and shared: a test that changes one builds its own admission.Policy."""
    rule = admission.policy(POLICIES / file)
    assert rule.template["spec"]["crd"]["spec"]["names"]["kind"] == rule.constraint["kind"], file
    return rule


def installed_in_prod() -> admission.PolicySet:
    """Every Constraint the prod overlay installs, as Gatekeeper would run them."""
    from tests.policies.platform_objects import overlay_objects

    return admission.PolicySet(policies=admission.policies_of(overlay_objects()["prod"], "overlay prod"))


def without_paragraph(rule: admission.Policy, marker: str) -> admission.Policy:
    """`rule` with the paragraph of its rego that holds `marker` taken out (a negative control)."""
    template = copy.deepcopy(rule.template)
    target = template["spec"]["targets"][0]
    paragraphs = target["rego"].split("\n\n")
    kept = [p for p in paragraphs if marker not in p]
    assert len(kept) == len(paragraphs) - 1, marker
    target["rego"] = "\n\n".join(kept)
    return admission.Policy(template=template, constraint=rule.constraint)
