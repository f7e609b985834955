"""The RBAC evaluator on known cases, before any journey trusts it.

Each case is what the API server's RBAC authorizer answers (kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go,
plugin/pkg/auth/authorizer/rbac): a positive control first, then the refusals, then a binding broken
on purpose to show the evaluator notices.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.rbac_evaluator_without_apiserver import Rbac, Request, person, request_info, service_account

RBAC = "rbac.authorization.k8s.io"


def role(namespace: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Role", "metadata": {"namespace": namespace, "name": name}, "rules": list(rules)}


def cluster_role(name: str, *rules: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}


def binding(namespace: str | None, role_kind: str, role_name: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    metadata = {"name": f"{role_name}-binding", **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def group(name: str) -> dict[str, Any]:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


ALICE = person("alice@example.com", "fraud-members")
RUNNER = service_account("fraud", "pipeline-runner")
WORKFLOWS = {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "create"]}


def create_workflow(namespace: str) -> Request:
    return Request("create", "workflows", "argoproj.io", namespace=namespace)


def test_positive_control_a_group_bound_to_a_role_may_do_what_the_role_says_in_that_namespace() -> None:
    rbac = Rbac.of([role("fraud", "submit", WORKFLOWS), binding("fraud", "Role", "submit", group("fraud-members"))])
    grant = rbac.grant(ALICE, create_workflow("fraud"))
    assert grant is not None and "RoleBinding fraud/submit-binding" in str(grant)
    assert not rbac.allows(ALICE, create_workflow("pricing")), "a RoleBinding grants in its own namespace only"
    assert not rbac.allows(ALICE, Request("delete", "workflows", "argoproj.io", namespace="fraud"))
    assert not rbac.allows(ALICE, Request("create", "workflows", "", namespace="fraud")), "the group must match"
    assert not rbac.allows(person("bob", "pricing-members"), create_workflow("fraud"))


def test_a_binding_broken_on_purpose_grants_nothing() -> None:
    wrong_group = [role("fraud", "submit", WORKFLOWS), binding("fraud", "Role", "submit", group("fraud-member"))]
    wrong_role = [role("fraud", "submit", WORKFLOWS), binding("fraud", "Role", "submitter", group("fraud-members"))]
    wrong_namespace = [role("pricing", "submit", WORKFLOWS), binding("fraud", "Role", "submit", group("fraud-members"))]
    for objects in (wrong_group, wrong_role, wrong_namespace):
        assert not Rbac.of(objects).allows(ALICE, create_workflow("fraud")), objects


def test_a_rolebinding_to_a_clusterrole_grants_it_in_the_binding_namespace_only() -> None:
    rbac = Rbac.of(
        [cluster_role("editor", WORKFLOWS), binding("fraud", "ClusterRole", "editor", group("fraud-members"))]
    )
    assert rbac.allows(ALICE, create_workflow("fraud"))
    assert not rbac.allows(ALICE, create_workflow("pricing"))
    assert not rbac.allows(ALICE, Request("get", "workflows", "argoproj.io")), "not cluster-wide"


def test_a_clusterrolebinding_grants_everywhere() -> None:
    rbac = Rbac.of([cluster_role("editor", WORKFLOWS), binding(None, "ClusterRole", "editor", group("fraud-members"))])
    assert rbac.allows(ALICE, create_workflow("pricing"))
    assert rbac.allows(ALICE, Request("get", "workflows", "argoproj.io"))


def test_service_account_subjects_and_their_groups() -> None:
    rules = role(
        "fraud", "report", {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create"]}
    )
    results = Request("create", "workflowtaskresults", "argoproj.io", namespace="fraud")
    by_name = {"kind": "ServiceAccount", "name": "pipeline-runner"}  # namespace: the binding's
    assert Rbac.of([rules, binding("fraud", "Role", "report", by_name)]).allows(RUNNER, results)
    elsewhere = {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "pricing"}
    assert not Rbac.of([rules, binding("fraud", "Role", "report", elsewhere)]).allows(RUNNER, results)
    for name in ("system:serviceaccounts", "system:serviceaccounts:fraud", "system:authenticated"):
        assert Rbac.of([rules, binding("fraud", "Role", "report", group(name))]).allows(RUNNER, results), name
    other = Rbac.of([rules, binding("fraud", "Role", "report", group("system:serviceaccounts:pricing"))])
    assert not other.allows(RUNNER, results)
    user = {"apiGroup": RBAC, "kind": "User", "name": "system:serviceaccount:fraud:pipeline-runner"}
    assert Rbac.of([rules, binding("fraud", "Role", "report", user)]).allows(RUNNER, results)


def test_subresources_are_their_own_resources() -> None:
    pods = role("fraud", "pods", {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    rbac = Rbac.of([pods, binding("fraud", "Role", "pods", group("fraud-members"))])
    assert rbac.allows(ALICE, Request("get", "pods", namespace="fraud", name="p"))
    assert not rbac.allows(ALICE, Request("get", "pods", subresource="log", namespace="fraud", name="p"))
    for entry in ("pods/log", "*/log", "pods/*", "*"):
        logs = role("fraud", "pods", {"apiGroups": [""], "resources": [entry], "verbs": ["get"]})
        allowed = Rbac.of([logs, binding("fraud", "Role", "pods", group("fraud-members"))])
        assert allowed.allows(ALICE, Request("get", "pods", subresource="log", namespace="fraud", name="p")), entry
    only_log = role("fraud", "pods", {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]})
    assert not Rbac.of([only_log, binding("fraud", "Role", "pods", group("fraud-members"))]).allows(
        ALICE, Request("get", "pods", namespace="fraud", name="p")
    )


def test_resource_names_limit_a_rule_and_never_match_a_request_without_a_name() -> None:
    token = role(
        "fraud",
        "token",
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"], "resourceNames": ["runner"]},
    )
    rbac = Rbac.of([token, binding("fraud", "Role", "token", group("fraud-members"))])
    mint = Request("create", "serviceaccounts", subresource="token", namespace="fraud", name="runner")
    assert rbac.allows(ALICE, mint)
    assert not rbac.allows(
        ALICE, Request("create", "serviceaccounts", subresource="token", namespace="fraud", name="x")
    )
    secret = role(
        "fraud", "s", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"], "resourceNames": ["a"]}
    )
    rbac = Rbac.of([secret, binding("fraud", "Role", "s", group("fraud-members"))])
    assert rbac.allows(ALICE, Request("get", "secrets", namespace="fraud", name="a"))
    assert not rbac.allows(ALICE, Request("list", "secrets", namespace="fraud")), "list carries no name"


def test_wildcards_in_verbs_groups_and_resources() -> None:
    star = role("fraud", "all", {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    rbac = Rbac.of([star, binding("fraud", "Role", "all", group("fraud-members"))])
    assert rbac.allows(ALICE, Request("deletecollection", "inferenceservices", "serving.kserve.io", namespace="fraud"))
    assert not rbac.allows(ALICE, Request("get", "nodes")), "a Role never grants cluster-scoped resources"


def test_non_resource_urls_count_through_cluster_bindings_only_and_bootstrap_discovery_is_there() -> None:
    assert Rbac.of([]).allows(RUNNER, Request("get", path="/apis/argoproj.io/v1alpha1"))
    assert not Rbac.of([], bootstrap=False).allows(RUNNER, Request("get", path="/apis"))
    assert not Rbac.of([]).allows(RUNNER, Request("get", path="/metrics"))
    metrics = cluster_role("metrics", {"nonResourceURLs": ["/metrics"], "verbs": ["get"]})
    assert Rbac.of([metrics, binding(None, "ClusterRole", "metrics", group("fraud-members"))]).allows(
        ALICE, Request("get", path="/metrics")
    )
    assert not Rbac.of([metrics, binding("fraud", "ClusterRole", "metrics", group("fraud-members"))]).allows(
        ALICE, Request("get", path="/metrics")
    )


def test_aggregated_clusterroles_hold_the_rules_their_selectors_match() -> None:
    aggregate = {
        "kind": "ClusterRole",
        "metadata": {"name": "team"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-team": "true"}}]},
        "rules": [],
    }
    part = cluster_role("team-workflows", WORKFLOWS, labels={"aggregate-to-team": "true"})
    unlabelled = cluster_role("team-secrets", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    rbac = Rbac.of([aggregate, part, unlabelled, binding("fraud", "ClusterRole", "team", group("fraud-members"))])
    assert rbac.allows(ALICE, create_workflow("fraud"))
    assert not rbac.allows(ALICE, Request("get", "secrets", namespace="fraud", name="x"))


ARGO = "/apis/argoproj.io/v1alpha1/namespaces/fraud/workflows"
ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/fraud/inferenceservices/m"
KSERVE, CORE = "serving.kserve.io", ""


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", ARGO, create_workflow("fraud")),
        ("GET", ARGO, Request("list", "workflows", "argoproj.io", namespace="fraud")),
        ("GET", f"{ARGO}?watch=true", Request("watch", "workflows", "argoproj.io", namespace="fraud")),
        ("GET", "/api/v1/namespaces/fraud/pods/p1/log", Request("get", "pods", CORE, "log", "fraud", "p1")),
        (
            "POST",
            "/api/v1/namespaces/fraud/serviceaccounts/pipeline-runner/token",
            Request("create", "serviceaccounts", CORE, "token", "fraud", "pipeline-runner"),
        ),
        ("PUT", ISVC, Request("update", "inferenceservices", KSERVE, "", "fraud", "m")),
        ("PATCH", f"{ISVC}/status", Request("patch", "inferenceservices", KSERVE, "status", "fraud", "m")),
        ("DELETE", "/api/v1/namespaces/fraud/pods", Request("deletecollection", "pods", namespace="fraud")),
        ("GET", "/api/v1/namespaces/fraud", Request("get", "namespaces", namespace="fraud", name="fraud")),
        ("GET", "/api/v1/nodes", Request("list", "nodes")),
        (
            "GET",
            f"{ARGO}?fieldSelector=metadata.name%3Drun-1&watch=true",
            Request("watch", "workflows", "argoproj.io", namespace="fraud", name="run-1"),
        ),
        (
            "GET",
            f"{ARGO}?fieldSelector=metadata.name!%3Drun-1",
            Request("list", "workflows", "argoproj.io", namespace="fraud"),
        ),
        ("GET", "/healthz", Request("get", path="/healthz")),
    ],
)
def test_request_info_reads_a_path_as_the_api_server_does(method: str, url: str, expected: Request) -> None:
    assert request_info(method, url) == expected
