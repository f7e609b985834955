"""Where a platform Service lives on the cluster, stated once: its name, namespace and port.

A URL in a pipelines namespace's `mlops-platform` ConfigMap is rendered from these (through
pipelines.cluster.cluster_settings), and tests/manifests/test_network_flows.py checks each URL the
ConfigMap holds against the Service the manifests render and the NetworkPolicies that must let a
pipeline pod reach it. A URL written by hand once named `pushgateway.monitoring.svc` while the
Pushgateway ran in namespace `mlops` (issue 28): every drift push failed, transiently, until the
nightly gave up. The Pushgateway is now one per pipelines namespace (`pushgateway`, issue 29).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUSHGATEWAY_NAME", "PUSHGATEWAY_PORT", "ServiceAddress", "pushgateway"]


@dataclass(frozen=True, kw_only=True)
class ServiceAddress:
    """One Service: what a pod in any namespace dials to reach it."""

    name: str
    namespace: str
    port: int
    scheme: str = "http"

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


PUSHGATEWAY_NAME = "pushgateway"
PUSHGATEWAY_PORT = 9091


def pushgateway(namespace: str) -> ServiceAddress:
    """The Pushgateway of one pipelines namespace (issue 29): each tenant, and the shared
    mlops-pipelines namespace, pushes only to its own, in its own namespace, which Prometheus scrapes
    with that namespace (pipelines/tenant_monitoring.py renders it). The one shared Pushgateway in
    `mlops` it replaces took any tenant's push for any namespace."""
    return ServiceAddress(name=PUSHGATEWAY_NAME, namespace=namespace, port=PUSHGATEWAY_PORT)
