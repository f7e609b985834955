"""Istio's sidecar in every tenant namespace, for the serving authorization promote applies (issue 29).

components/steps/serving_authorization.py admits callers of a model by their mTLS identity (`source.namespaces`,
`source.principals`): Istio knows a caller's identity only through its sidecar, and only a sidecar
beside the model enforces the AuthorizationPolicy. So each tenant namespace, rendered from
manifests/tenants/tenants.yaml by pipelines/tenancy.py, carries Istio's injection label; the
sidecar's own flow to istiod is a required flow (tests/manifests/test_network_flows.py)."""

from __future__ import annotations

from typing import Any

from pipelines.tenancy import ISTIO_INJECTION, load, namespace
from tests.conftest import REPO
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"


def uninjected(namespaces: list[dict[str, Any]]) -> list[str]:
    """The namespaces whose pods Istio would not give a sidecar."""
    return [
        n["metadata"]["name"]
        for n in namespaces
        if any(n["metadata"].get("labels", {}).get(k) != v for k, v in ISTIO_INJECTION.items())
    ]


def test_every_tenant_namespace_gets_istios_sidecar() -> None:
    """issue 29: the AuthorizationPolicy promote renders admits callers by mTLS identity, but no
    tenant namespace was labelled for injection, so no sidecar enforced it and no caller had an
    identity. Positive control: every rendered tenant's Namespace is labelled; broken on purpose:
    the Namespace without the label is seen."""
    declared = load(MANIFESTS)
    assert declared.tenants, "no tenants declared: the check would see nothing"
    rendered = [
        obj
        for tenant in declared.tenants
        for obj in render(MANIFESTS / "tenants" / tenant.name)
        if obj["kind"] == "Namespace"
    ]
    assert sorted(n["metadata"]["name"] for n in rendered) == sorted(t.name for t in declared.tenants)
    assert uninjected(rendered) == []
    broken = namespace(declared.tenants[0])
    del broken["metadata"]["labels"]["istio-injection"]
    assert uninjected([broken]) == [declared.tenants[0].name]


def test_every_pipelines_namespace_of_each_overlay_gets_istios_sidecar() -> None:
    """issue 29: the shared mlops-pipelines namespace serves models too (the platform's own), and was
    not labelled either. Every Namespace the overlays render with the pipelines role is injected."""
    for overlay in ("dev", "prod"):
        pipelines = [
            obj
            for obj in render(MANIFESTS / "overlays" / overlay)
            if obj["kind"] == "Namespace"
            and obj["metadata"].get("labels", {}).get("mlops.private-platform.io/role") == "pipelines"
        ]
        assert "mlops-pipelines" in [n["metadata"]["name"] for n in pipelines], overlay
        assert uninjected(pipelines) == [], overlay
