"""Isolation probes on monitoring: each tenant's own Pushgateway (`mlops dev up --monitoring --tenancy`).

Issue 29: on one shared Pushgateway, scraped with honor_labels, a pricing pod pushed
`mlops_drift_share 1` for namespace fraud and paged fraud's owner, or deleted fraud's group to hide
real drift. Each tenant now pushes to its own gateway, whose scrape sets the namespace
(pipelines/tenant_monitoring.py); on loopback, where no NetworkPolicy keeps one tenant's process
off another's port, each gateway takes only its tenant's password (devstack/tenant_pushgateways.py).
The probes push to and delete from the target's gateway with the attacker's own credentials (its
one password, which `mlops tenant env` gives it); the control pushes to and deletes from the attacker's own. Only
a harmless `isolation_probe` family under job `isolation-check` is pushed, which the scrape's
keep-list drops anyway; a group a leaking push left is deleted again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import Denied

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "available"]

OWN_PATH = "own: pushgateway push to and delete from its own gateway"
GROUP = "/metrics/job/isolation-check"
BODY = "# TYPE isolation_probe gauge\nisolation_probe 1\n"


def available(stack: Stack) -> str:
    """Empty when per-tenant monitoring runs on this stack; else what starts it."""
    from devstack import tenant_monitoring

    names = tenant_monitoring.tenants(stack)
    monitoring = tenant_monitoring.services(stack, names)
    if names and all(monitoring.running(f"pushgateway-{name}") for name in names):
        return ""
    return "mlops dev up --tenancy --monitoring (one Pushgateway per tenant)"


def _gateway_url(stack: Stack, tenant: Tenant) -> str:
    from devstack import tenant_monitoring

    return tenant_monitoring.environment(stack, tenant.name)["MLOPS_PUSHGATEWAY_URL"]


def _credentials(stack: Stack, tenant: Tenant) -> tuple[str, str]:
    """The tenant's own push credentials: its name and its one password (devstack/tenant_pushgateways.py)."""
    return tenant.name, tenant.password


def _call(method: str, url: str, auth: tuple[str, str]) -> Any:
    import requests

    return requests.request(method, url + GROUP, data=BODY if method == "PUT" else None, auth=auth, timeout=5)


def own_gateway(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the tenant pushes a group to its own gateway and deletes it."""
    url = _gateway_url(stack, tenant)
    auth = _credentials(stack, tenant)
    pushed, deleted = _call("PUT", url, auth), _call("DELETE", url, auth)
    if pushed.status_code != 200 or deleted.status_code != 202:
        raise RuntimeError(f"its own gateway answered PUT {pushed.status_code}, DELETE {deleted.status_code}")
    return f"PUT and DELETE of a group on its own Pushgateway ({url})"


def _into_target(scene: Scene, method: str) -> str:
    url = _gateway_url(scene.stack, scene.target)
    auth = _credentials(scene.stack, scene.attacker)
    answer = _call(method, url, auth)
    if answer.status_code == 401:
        if not scene.own_control_passed(OWN_PATH):
            raise RuntimeError("401, but the attacker's own credentials did not work on its own gateway either")
        raise Denied(f"the target's Pushgateway answered 401 to {method} with the attacker's credentials")
    if answer.status_code >= 300:
        raise RuntimeError(f"the target's Pushgateway answered {method} {answer.status_code}: {answer.text[:100]}")
    if method == "PUT":  # clean up what leaked, as the target would have to
        _call("DELETE", url, _credentials(scene.stack, scene.target))
    return f"{method} {GROUP} on the target's Pushgateway answered {answer.status_code}"


def push_into_target(scene: Scene) -> str:
    """Push a group to the target's gateway: the way to forge the target's alerts."""
    return _into_target(scene, "PUT")


def delete_on_target(scene: Scene) -> str:
    """Delete a group on the target's gateway: the way to hide the target's real drift."""
    return _into_target(scene, "DELETE")


OWN = ((OWN_PATH, own_gateway),)
PROBES = (
    ("pushgateway push to the target's gateway with own credentials", push_into_target),
    ("pushgateway delete a group on the target's gateway", delete_on_target),
)
