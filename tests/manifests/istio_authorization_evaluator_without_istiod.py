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
- strings match exactly, or by prefix (`abc*`), suffix (`*abc`) or presence (`*`); `ports` (and
  `notPorts`) match the port the request arrives on at the workload, as strings, exactly;
- a principal (`<trust-domain>/ns/<ns>/sa/<sa>`) and a namespace are known only over mTLS: a
  request from outside the mesh matches no `principals` or `namespaces` value.
- an empty list is an unset field (istiod skips a field whose lists are empty: `namespaces: []`
  matches every source); what istiod's validation rejects is refused here too: `from: []`,
  `to: []`, a source or operation with no values, an empty-string value, DENY without rules.
CUSTOM and AUDIT actions, `when` conditions, spec fields other than selector/action/rules
(targetRef, targetRefs, provider) and fields this list does not name are refused, not guessed.

Only a sidecar enforces and only a sidecar speaks mTLS (`has_sidecar`: the namespace label
pipelines.tenancy.ISTIO_INJECTION or the pod's `sidecar.istio.io/inject`): a workload without one
enforces nothing (`Authorization.allowed` is True), and a caller without one sends plaintext, so
no `namespaces` or `principals` value matches it. An Istio gateway is an Envoy itself: it
enforces and relays over mTLS whatever its namespace's labels (`Proxy.gateway`).

`Mesh` joins it with the NetworkPolicy evaluator for paths through a shared proxy (Knative's
activator, Istio's ingress and cluster-local gateways): a relayed request arrives with the proxy's
identity, so it is allowed only when the network lets the caller reach the proxy and the proxy
reach the workload, the proxy's own policies admit the caller, and the workload's admit the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.tenancy import ISTIO_INJECTION
from tests.manifests.networkpolicy_evaluator_without_cni import Evaluator, Pod

ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"
POD_INJECTION = "sidecar.istio.io/inject"
REVISION = "istio.io/rev"


def has_sidecar(pod: Pod) -> bool:
    """Whether Istio's injector gives `pod` a sidecar, by the logic of "Controlling the injection
    policy" (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/): either label
    disabled (namespace `istio-injection: disabled`, pod `sidecar.istio.io/inject: "false"`), no;
    either enabled, yes; neither, no (`enableNamespacesByDefault` is off by default). Revision
    labels (`istio.io/rev`) are refused, not guessed."""
    if REVISION in pod.labels or REVISION in pod.namespace_labels:
        raise ValueError(f"{REVISION}: the evaluator does not model revision-based injection")
    ((key, enabled),) = ISTIO_INJECTION.items()
    namespace, own = pod.namespace_labels.get(key), pod.labels.get(POD_INJECTION)
    if namespace == "disabled" or own == "false":
        return False
    return namespace == enabled or own == "true"


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
    port: int | None = None  # where it arrives at the Envoy deciding; a rule naming ports needs one


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
    """One field and its `not` twin: the value must match one of `name` (if set) and none of
    `notName`. An empty list is unset, as istiod reads it (model.go skips a field with no values)."""
    wanted, refused = spec.get(name) or [], spec.get("not" + name[0].upper() + name[1:]) or []
    if "" in wanted or "" in refused:
        raise ValueError(f"an empty value in {name}: istiod rejects the policy")
    if wanted and (value is None or not any(matches(p, value) for p in wanted)):
        return False
    return not (value is not None and any(matches(p, value) for p in refused))


SOURCE_FIELDS = {"namespaces", "principals", "notNamespaces", "notPrincipals"}
OPERATION_FIELDS = {"paths", "notPaths", "methods", "notMethods", "hosts", "notHosts", "ports", "notPorts"}
SPEC_FIELDS = {"selector", "action", "rules"}
RULE_FIELDS = {"from", "to", "when"}


def _checked(entry: dict[str, Any], fields: set[str], what: str) -> None:
    """Fields the evaluator does not model are refused; one with no values is what istiod rejects."""
    unknown = set(entry) - fields
    if unknown:
        raise ValueError(f"{what} fields {sorted(unknown)}: the evaluator does not model them")
    if not any(entry.values()):
        raise ValueError(f"`{what}` must not be empty: istiod rejects the policy")


def _source_matches(source: dict[str, Any], request: Request) -> bool:
    _checked(source, SOURCE_FIELDS, "from.source")
    identity = request.source
    namespace = identity.namespace if identity else None
    principal = identity.principal if identity else None
    return _field(source, "namespaces", namespace) and _field(source, "principals", principal)


def _operation_matches(operation: dict[str, Any], request: Request) -> bool:
    _checked(operation, OPERATION_FIELDS, "to.operation")
    for field in ("ports", "notPorts"):  # numbers only: istiod rejects a pattern ("80*") or a name
        if any(not str(port).isdigit() for port in operation.get(field) or []):
            raise ValueError(f"{field} {operation[field]}: istiod rejects a port that is not a number")
    return (
        _field(operation, "paths", request.path)
        and _field(operation, "methods", request.method)
        and _field(operation, "hosts", request.host)
        and _field(operation, "ports", None if request.port is None else str(request.port))
    )


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    if set(rule) - RULE_FIELDS:
        raise ValueError(f"rule fields {sorted(set(rule) - RULE_FIELDS)}: the evaluator does not model them")
    if "when" in rule:
        raise ValueError("`when` conditions: the evaluator does not model them")
    for key in ("from", "to"):
        if key in rule and not rule[key]:
            raise ValueError(f"`{key}` must not be empty: istiod rejects the policy")
    sources, operations = rule.get("from"), rule.get("to")
    from_ok = not sources or any(_source_matches(s.get("source") or {}, request) for s in sources)
    to_ok = not operations or any(_operation_matches(o.get("operation") or {}, request) for o in operations)
    return from_ok and to_ok


@dataclass(frozen=True)
class Authorization:
    """All AuthorizationPolicies of a cluster; `allowed` answers one request to one workload."""

    policies: list[dict[str, Any]]

    def applying(self, workload: Pod) -> list[dict[str, Any]]:
        found = []
        for policy in self.policies:
            spec = policy.get("spec") or {}
            if set(spec) - SPEC_FIELDS:
                raise ValueError(f"spec fields {sorted(set(spec) - SPEC_FIELDS)}: the evaluator does not model them")
            if set(spec.get("selector") or {}) - {"matchLabels"}:
                raise ValueError("a WorkloadSelector has matchLabels only")
            namespace = policy["metadata"].get("namespace")
            labels = (spec.get("selector") or {}).get("matchLabels") or {}
            if namespace in (workload.namespace, ROOT_NAMESPACE) and all(
                workload.labels.get(k) == v for k, v in labels.items()
            ):
                found.append(policy)
        return found

    def allowed(self, workload: Pod, request: Request) -> bool:
        """What reaches `workload`: everything without a sidecar (nothing enforces), else its decision."""
        return not has_sidecar(workload) or self.decides(workload, request)

    def decides(self, workload: Pod, request: Request) -> bool:
        """What the Envoy in front of `workload` (its sidecar, or a gateway itself) decides."""
        by_action: dict[str, list[dict[str, Any]]] = {"ALLOW": [], "DENY": []}
        for policy in self.applying(workload):
            spec = policy.get("spec") or {}
            action = spec.get("action", "ALLOW")
            if action not in by_action:
                raise ValueError(f"action {action}: the evaluator models ALLOW and DENY only")
            if action == "DENY" and spec.get("rules") is None:
                raise ValueError("DENY without `rules`: istiod rejects the policy")
            by_action[action].append(policy)

        def any_rule(policies: list[dict[str, Any]]) -> bool:
            return any(_rule_matches(r, request) for p in policies for r in (p.get("spec") or {}).get("rules") or [])

        if any_rule(by_action["DENY"]):
            return False
        return not by_action["ALLOW"] or any_rule(by_action["ALLOW"])


@dataclass(frozen=True)
class Proxy:
    """A shared proxy as a hop: its pod, the port callers reach it on, the identity it relays with.
    `gateway`: an Istio gateway, an Envoy itself, in the mesh whatever its namespace's labels; any
    other proxy (Knative's activator) enforces and relays over mTLS only with a sidecar."""

    name: str
    pod: Pod
    port: int
    identity: Identity
    gateway: bool = False

    @property
    def in_mesh(self) -> bool:
        return self.gateway or has_sidecar(self.pod)

    def admits(self, authorization: Authorization, request: Request) -> bool:
        """Whether the proxy passes `request` on: its own policies decide, if it enforces at all."""
        return authorization.decides(self.pod, request) if self.in_mesh else True

    @property
    def relays_as(self) -> Identity | None:
        return self.identity if self.in_mesh else None


@dataclass(frozen=True)
class Caller:
    pod: Pod
    service_account: str

    @property
    def identity(self) -> Identity | None:
        """Its mTLS identity, which only a sidecar presents: without one the request is plaintext."""
        return Identity(self.pod.namespace, self.service_account) if has_sidecar(self.pod) else None


@dataclass(frozen=True)
class Mesh:
    """The network (NetworkPolicies) and the authorization (AuthorizationPolicies) together."""

    network: Evaluator
    authorization: Authorization

    def reaches(
        self, caller: Caller, workload: Pod, port: int, path: str, via: Proxy | None = None, method: str = "POST"
    ) -> bool:
        """Whether `caller` gets `method path` answered by `workload` on `port`, directly or through `via`."""
        if via is None:
            return self.network.allowed(caller.pod, workload, port) and self.authorization.allowed(
                workload, Request(caller.identity, path, method, port=port)
            )
        return (
            self.network.allowed_via(caller.pod, via.pod, via.port, workload, port)
            and via.admits(self.authorization, Request(caller.identity, path, method, port=via.port))
            and self.authorization.allowed(workload, Request(via.relays_as, path, method, port=port))
        )
