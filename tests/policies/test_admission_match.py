"""mlops.admission matches objects to Constraints as Gatekeeper does (pkg/mutation/match), on known cases.

The platform test reviews every rendered object with the Constraints that match it, so a
matcher stricter than Gatekeeper's would leave objects unreviewed: a cluster-scoped object (a
ClusterTrainingRuntime) is matched whatever namespaces a Constraint names, a Namespace by its own
name, and namespace names take a leading or trailing `*`.
"""

from __future__ import annotations

from typing import Any

from mlops import admission
from tests.policies.policy_files import POLICIES


def _rule(match: dict[str, Any]) -> admission.Policy:
    """pod-security.yaml's policy with `match` for its Constraint's (its own: the shared one stays as installed)."""
    rule = admission.policy(POLICIES / "pod-security.yaml")
    rule.constraint = {**rule.constraint, "spec": {**rule.constraint["spec"], "match": match}}
    return rule


def _obj(kind: str, api_version: str, namespace: str | None, name: str = "x") -> dict[str, Any]:
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def test_namespaces_and_exclusions_as_gatekeeper_reads_them() -> None:
    kinds = [{"apiGroups": ["", "trainer.kubeflow.org"], "kinds": ["Pod", "Namespace", "ClusterTrainingRuntime"]}]
    only = _rule({"kinds": kinds, "namespaces": ["fraud", "team-*"], "excludedNamespaces": ["*-system"]})
    assert only.matches(_obj("Pod", "v1", "fraud"))  # positive control
    assert only.matches(_obj("Pod", "v1", "team-a"))  # prefix glob
    assert not only.matches(_obj("Pod", "v1", "pricing"))
    assert not only.matches(_obj("Pod", "v1", "team-system"))  # suffix glob, excluded
    assert only.matches(_obj("ClusterTrainingRuntime", "trainer.kubeflow.org/v1alpha1", None))  # cluster-scoped
    assert only.matches(_obj("Namespace", "v1", None, name="fraud"))  # a Namespace by its name
    assert not only.matches(_obj("Namespace", "v1", None, name="pricing"))
    assert not only.matches(_obj("Deployment", "apps/v1", "fraud"))  # kind not listed
    assert not only.matches(_obj("Pod", "example.com/v1", "fraud"))  # group not listed
