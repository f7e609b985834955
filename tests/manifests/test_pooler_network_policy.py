"""The poolers' one-direction NetworkPolicies come from one builder (pipelines.tenant_pooler.network_policy).

Issue 30 (repeated logic): postgres-from-tenant-poolers (ingress) and each tenant's
allow-own-pgbouncer-egress (egress) were two hand-written copies of one body. Both now come from
`network_policy`, taking the direction; make golden renders the same files.
"""

from __future__ import annotations

from pipelines.cluster import PLATFORM_NAMESPACE
from pipelines.tenant_pooler import (
    PORT,
    network_policy,
    postgres_from_tenant_poolers,
    tenant_pooler,
    tenant_pooler_egress,
)


def test_the_builder_allows_one_direction_to_or_from_its_peers_on_the_pooler_port() -> None:
    """issue 30: one builder, the direction decides the policy type, the rule's key and its side."""
    peers = [{"podSelector": {"matchLabels": {"a": "b"}}}]
    ingress = network_policy("in", "ns", {"app": "x"}, "Ingress", peers)["spec"]
    egress = network_policy("out", "ns", {}, "Egress", peers)["spec"]
    assert ingress == {
        "podSelector": {"matchLabels": {"app": "x"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": PORT}]}],
    }
    assert egress == {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": peers, "ports": [{"protocol": "TCP", "port": PORT}]}],
    }


def test_a_tenants_egress_reaches_exactly_the_pods_its_own_pooler_admits_it_to() -> None:
    """issue 30: both sides of the tenant -> pooler flow, rendered by the builder, name the same pods and port."""
    egress = tenant_pooler_egress("fraud")
    assert egress["metadata"]["namespace"] == "fraud" and egress["spec"]["policyTypes"] == ["Egress"]
    (rule,) = egress["spec"]["egress"]
    (peer,) = rule["to"]
    objects = {document["kind"]: document for document in tenant_pooler("fraud", 4)}
    assert peer["podSelector"]["matchLabels"] == objects["Service"]["spec"]["selector"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": PLATFORM_NAMESPACE}
    assert rule["ports"] == objects["NetworkPolicy"]["spec"]["ingress"][0]["ports"]
    postgres = postgres_from_tenant_poolers()["spec"]
    assert postgres["policyTypes"] == ["Ingress"] and postgres["ingress"][0]["ports"] == rule["ports"]
