"""Test-only: Istio AuthorizationPolicy semantics, evaluated in Python because no istiod or Envoy runs here.

What a sidecar (or a gateway) enforces, reduced to what the platform's policies use, from Istio's
reference (https://istio.io/latest/docs/reference/config/security/authorization-policy/):
- the policies that apply to a workload are those of its namespace and of the root namespace
  (istio-system: mesh-wide) whose `selector` matches its labels (no selector: every workload);
- DENY first: any matching DENY rule denies; then, with no ALLOW policy applying, allow; with one
  or more, allow only when a rule of one of them matches (default deny). A policy with no rules
  matches nothing (`spec: {}` is allow-nothing); a rule with neither `from` nor `to` matches all;
- within a rule, `from` and `to` must both match; entries of a list are ORed; the fields of one
  source or operation are ANDed, the values of one field ORed, `not*` fields exclude;
- strings match exactly, or by prefix (`abc*`), suffix (`*abc`) or presence (`*`);
- a principal (`<trust-domain>/ns/<ns>/sa/<sa>`) and a namespace are known only over mTLS: a
  request from outside the mesh matches no `principals` or `namespaces` value.
CUSTOM and AUDIT actions and `when` conditions are refused, not guessed.

`Mesh` joins it with the NetworkPolicy evaluator for paths through a shared proxy (Knative's
activator, Istio's ingress and cluster-local gateways): a relayed request arrives with the proxy's
identity, so it is allowed only when the network lets the caller reach the proxy and the proxy
reach the workload, the proxy's own policies admit the caller, and the workload's admit the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod

ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Identity:
    """Who a request comes from, as the receiving proxy sees it: None over plaintext."""

    namespace: str
    service_account: str

    @property
    def principal(self) -> str:
        return f"{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True)
class Request:
    source: Identity | None
    path: str
    method: str = "POST"
    host: str = ""


def matches(pattern: str, value: str) -> bool:
    """Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any value present)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _field(spec: dict[str, Any], name: str, value: str | None) -> bool:
    """One field and its `not` twin: the value must match one of `name` (if set) and none of `notName`."""
    wanted, refused = spec.get(name), spec.get("not" + name[0].upper() + name[1:])
    if wanted is not None and (value is None or not any(matches(p, value) for p in wanted)):
        return False
    return not (refused is not None and value is not None and any(matches(p, value) for p in refused))


SOURCE_FIELDS = {"namespaces", "principals", "notNamespaces", "notPrincipals"}
OPERATION_FIELDS = {"paths", "notPaths", "methods", "notMethods", "hosts", "notHosts"}


def _source_matches(source: dict[str, Any], request: Request) -> bool:
    unknown = set(source) - SOURCE_FIELDS
    if unknown:
        raise ValueError(f"source fields {sorted(unknown)}: the evaluator does not model them")
    identity = request.source
    namespace = identity.namespace if identity else None
    principal = identity.principal if identity else None
    return _field(source, "namespaces", namespace) and _field(source, "principals", principal)


def _operation_matches(operation: dict[str, Any], request: Request) -> bool:
    unknown = set(operation) - OPERATION_FIELDS
    if unknown:
        raise ValueError(f"operation fields {sorted(unknown)}: the evaluator does not model them")
    return (
        _field(operation, "paths", request.path)
        and _field(operation, "methods", request.method)
        and _field(operation, "hosts", request.host)
    )


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    if "when" in rule:
        raise ValueError("`when` conditions: the evaluator does not model them")
    sources, operations = rule.get("from"), rule.get("to")
    from_ok = not sources or any(_source_matches(s.get("source", {}), request) for s in sources)
    to_ok = not operations or any(_operation_matches(o.get("operation", {}), request) for o in operations)
    return from_ok and to_ok


@dataclass(frozen=True)
class Authorization:
    """All AuthorizationPolicies of a cluster; `allowed` answers one request to one workload."""

    policies: list[dict[str, Any]]

    def applying(self, workload: Pod) -> list[dict[str, Any]]:
        found = []
        for policy in self.policies:
            namespace = policy["metadata"].get("namespace")
            selector = (policy.get("spec") or {}).get("selector")
            labels = (selector or {}).get("matchLabels") or {}
            if namespace in (workload.namespace, ROOT_NAMESPACE) and all(
                workload.labels.get(k) == v for k, v in labels.items()
            ):
                found.append(policy)
        return found

    def allowed(self, workload: Pod, request: Request) -> bool:
        by_action: dict[str, list[dict[str, Any]]] = {"ALLOW": [], "DENY": []}
        for policy in self.applying(workload):
            action = (policy.get("spec") or {}).get("action", "ALLOW")
            if action not in by_action:
                raise ValueError(f"action {action}: the evaluator models ALLOW and DENY only")
            by_action[action].append(policy)

        def any_rule(policies: list[dict[str, Any]]) -> bool:
            return any(_rule_matches(r, request) for p in policies for r in (p.get("spec") or {}).get("rules") or [])

        if any_rule(by_action["DENY"]):
            return False
        return not by_action["ALLOW"] or any_rule(by_action["ALLOW"])


@dataclass(frozen=True)
class Proxy:
    """A shared proxy as a hop: its pod, the port callers reach it on, the identity it relays with."""

    name: str
    pod: Pod
    port: int
    identity: Identity


@dataclass(frozen=True)
class Caller:
    pod: Pod
    service_account: str

    @property
    def identity(self) -> Identity:
        return Identity(self.pod.namespace, self.service_account)


@dataclass(frozen=True)
class Mesh:
    """The network (NetworkPolicies) and the authorization (AuthorizationPolicies) together."""

    network: Evaluator
    authorization: Authorization

    def reaches(self, caller: Caller, workload: Pod, port: int, path: str, via: Proxy | None = None) -> bool:
        """Whether `caller` gets `path` answered by `workload` on `port`, directly or through `via`."""
        if via is None:
            return self.network.allowed(caller.pod, workload, port) and self.authorization.allowed(
                workload, Request(caller.identity, path)
            )
        return (
            self.network.allowed_via(caller.pod, via.pod, via.port, workload, port)
            and self.authorization.allowed(via.pod, Request(caller.identity, path))
            and self.authorization.allowed(workload, Request(via.identity, path))
        )
