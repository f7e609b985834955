"""`mlops dev up --monitoring --tenancy`: the cluster's per-tenant monitoring beside a loopback stack.

The stack's Prometheus and Alertmanager, and one Pushgateway per tenant behind the tenant's
password (devstack/tenant_pushgateways.py) in place of the shared one: on loopback the password
does what the NetworkPolicy of each tenant namespace does on the cluster
(pipelines/tenant_monitoring.py). Which tenants have a gateway is kept in
`<stack>/monitoring/tenancy.json`, so `mlops tenant add` adds one to running monitoring and
`mlops tenant env` gives each tenant its own gateway's URL and credentials. The platform's own
environment (`mlops dev env`) names no Pushgateway here: the platform pushes nothing, and the
shared gateway that every tenant could reach is not started.

Ports: the gateways take free ports from GATEWAY_OFFSET above the stack's first port, clear of
the stack's own span (devstack.stack.PORT_SPAN) and of the tenants' Redis instances, which are
given the first free ports after that span (devstack/tenants.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack import tenant_pushgateways
from devstack.monitoring import Monitoring
from devstack.stack import PORT_SPAN, Stack
from devstack.tenant_pushgateways import Gateway, ScrapeConfig

__all__ = ["GATEWAY_OFFSET", "MONITORING_OFFSET", "add", "down", "environment", "services", "tenants", "up"]

GATEWAY_OFFSET = PORT_SPAN + 200
MONITORING_OFFSET = 5  # Prometheus, Pushgateway, Alertmanager: base+5..base+7 (devstack.stack)


def _state(stack: Stack) -> Path:
    return stack.root / "monitoring" / "tenancy.json"


def tenants(stack: Stack) -> tuple[str, ...]:
    """The tenants with a gateway on this stack ((): per-tenant monitoring was never started)."""
    try:
        return tuple(json.loads(_state(stack).read_text())["tenants"])
    except (OSError, ValueError, KeyError):
        return ()


def services(stack: Stack, names: tuple[str, ...], scrape: ScrapeConfig | None = None) -> Monitoring:
    from devstack.tenants import load_tenants

    return Monitoring(
        tenant_passwords={tenant.name: tenant.password for tenant in load_tenants(stack).values()},
        root=stack.root / "monitoring",
        port_base=stack.ports.postgres + MONITORING_OFFSET,
        tenants=names,
        tenant_scrape=scrape,
        gateway_first_port=stack.ports.postgres + GATEWAY_OFFSET,
    )


def up(
    stack: Stack, names: tuple[str, ...], scrape: ScrapeConfig, alert_routing: dict[str, Any], *, echo: bool = False
) -> dict[str, float]:
    """Start Prometheus, Alertmanager and a gateway for each tenant (and those started before)."""
    every = tuple(dict.fromkeys((*tenants(stack), *names)))
    monitoring = services(stack, every, scrape)
    monitoring.alert_routing = alert_routing
    (stack.root / "monitoring").mkdir(parents=True, exist_ok=True)
    _state(stack).write_text(json.dumps({"tenants": list(every)}))
    timings = monitoring.up()
    if echo:
        for gateway in monitoring.gateways():
            print(f"  {gateway.service:<22} up in {timings[gateway.service]:5.1f} s  {gateway.url}", flush=True)
        for service in ("alertmanager", "prometheus"):
            print(f"  {service:<22} up in {timings[service]:5.1f} s  {monitoring.url(service)}", flush=True)
    return timings


def add(stack: Stack, name: str, scrape: ScrapeConfig) -> Gateway | None:
    """A new tenant's gateway, started and scraped, when per-tenant monitoring runs on this stack."""
    known = tenants(stack)
    if not known:
        return None
    every = tuple(dict.fromkeys((*known, name)))
    monitoring = services(stack, every, scrape)
    _state(stack).write_text(json.dumps({"tenants": list(every)}))
    if monitoring.running("prometheus"):
        for service, argv, ready in monitoring.starts():
            if service.startswith("pushgateway-") and not monitoring.running(service):
                monitoring.start(service, argv, ready)
        monitoring.reload_prometheus()
    return monitoring.gateway(name)


def environment(stack: Stack, name: str) -> dict[str, str]:
    """The tenant's own gateway (URL, user, password), or {} when it has none; reads only (the
    gateways are written by `up` and `add`)."""
    gateway = tenant_pushgateways.load(stack.root / "monitoring").get(name)
    return gateway.environment() if gateway is not None and name in tenants(stack) else {}


def down(stack: Stack) -> list[str]:
    return services(stack, tenants(stack)).down()
