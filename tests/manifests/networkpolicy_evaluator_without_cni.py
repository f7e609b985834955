"""Test-only: Kubernetes NetworkPolicy semantics, evaluated in Python because no CNI runs here.

This is what a CNI enforces, reduced to what the platform's policies use: a flow from pod A to
pod B (or an address) on a port is allowed when A's egress allows it and B's ingress allows it.
A direction is open for a pod until a policy of that type selects it (then only its rules
allow); `policyTypes` defaults to Ingress, plus Egress when the egress list is non-empty; peers are
podSelector (the policy's namespace), namespaceSelector (with an optional podSelector) and
ipBlock; an absent `from`/`to` or `ports` means any. Named ports are refused, not guessed. A path
through a shared proxy is two flows (`allowed_via`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    namespace_labels: dict[str, str]


@dataclass(frozen=True)
class Address:
    ip: str


Endpoint = Pod | Address


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions; an empty selector selects everything."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False  # pod traffic is matched by selectors (the CNI sees pod IPs as pods)
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        if not isinstance(entry["port"], int):
            raise ValueError(f"named port {entry['port']!r}: the evaluator matches port numbers only")
        if entry["port"] <= port <= entry.get("endPort", entry["port"]):
            return True
    return False


def _types(policy: dict[str, Any]) -> list[str]:
    """The policy's types: as listed, or (unset) Ingress, plus Egress when it has egress rules: an
    empty `egress: []` without policyTypes leaves egress open, as the API server defaults it."""
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])


@dataclass
class Evaluator:
    """All NetworkPolicies of a cluster; `allowed` answers one flow."""

    policies: list[dict[str, Any]]

    def _selecting(self, pod: Pod, kind: str) -> list[dict[str, Any]]:
        return [
            policy
            for policy in self.policies
            if policy["metadata"].get("namespace") == pod.namespace
            and kind in _types(policy)
            and selects(policy["spec"].get("podSelector") or {}, pod.labels)
        ]

    def _direction_allows(self, pod: Pod, kind: str, other: Endpoint, port: int, protocol: str) -> bool:
        policies = self._selecting(pod, kind)
        if not policies:
            return True  # no policy of this type selects the pod: the direction is open
        key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(_peer_matches(p, pod.namespace, other) for p in peers)
                if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    def allowed(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        egress = not isinstance(source, Pod) or self._direction_allows(source, "Egress", destination, port, protocol)
        ingress = not isinstance(destination, Pod) or self._direction_allows(
            destination, "Ingress", source, port, protocol
        )
        return egress and ingress

    def allowed_via(
        self, source: Endpoint, proxy: Pod, proxy_port: int, destination: Endpoint, port: int, protocol: str = "TCP"
    ) -> bool:
        """A path through a shared proxy (Knative's activator, an Istio gateway) as two hops: the
        source reaches the proxy and the proxy reaches the destination. The network alone: whom the
        proxy relays for is the authorization's question (istio_authorization_evaluator_without_istiod.py)."""
        return self.allowed(source, proxy, proxy_port, protocol) and self.allowed(proxy, destination, port, protocol)
