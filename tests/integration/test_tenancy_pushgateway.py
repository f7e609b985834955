"""`mlops isolation-check`'s pushgateway rows (issue 29, forged and suppressed alerts), and broken on purpose.

On the session's tenancy stack with per-tenant monitoring (`mlops dev up --tenancy --monitoring`):
pricing pushes to and deletes from its own Pushgateway (the positive control), and is refused
both on fraud's. A gateway that also takes pricing's password (as one shared gateway, or a web
config listing every tenant, would) is reported as LEAK on both rows.
"""

from __future__ import annotations

import pytest
import yaml

from devstack import tenant_monitoring, tenant_pushgateways
from devstack.stack import Stack
from devstack.tenants import add_tenant, get_tenant
from mlops.isolation import DENIED, LEAK, OK, check
from pipelines.tenant_monitoring import prometheus_scrape_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def monitored(tenancy_stack: Stack) -> Stack:
    for name in ("fraud", "pricing"):
        add_tenant(tenancy_stack, name)  # idempotent: the tenancy tests add them too
    nowhere = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}
    tenant_monitoring.up(tenancy_stack, ("fraud", "pricing"), prometheus_scrape_config, nowhere)
    return tenancy_stack


def rows(stack: Stack) -> dict[str, tuple[str, str]]:
    attempts = check(stack, get_tenant(stack, "pricing"), get_tenant(stack, "fraud"), ["pushgateway"])
    return {attempt.path: (attempt.expected, attempt.observed) for attempt in attempts}


def test_pricing_cannot_push_to_or_delete_on_frauds_gateway(monitored: Stack) -> None:
    """issue 29: pricing pushed fraud's drift figures (paging fraud's owner) or deleted them (hiding
    real drift). Positive control first: its own gateway takes its push and delete."""
    observed = rows(monitored)
    own = {path: seen for path, (expected, seen) in observed.items() if expected == OK}
    probes = {path: seen for path, (expected, seen) in observed.items() if expected != OK}
    assert own and set(own.values()) == {OK}, observed
    assert len(probes) == 2 and set(probes.values()) == {DENIED}, observed


def test_a_gateway_that_takes_another_tenants_password_is_reported_as_leaks(monitored: Stack) -> None:
    """The control broken on purpose: fraud's gateway also lists pricing's user (the gateway reads
    its web config on every request), and both rows say LEAK."""
    import bcrypt

    monitoring = tenant_monitoring.services(monitored, tenant_monitoring.tenants(monitored))
    web_config = tenant_pushgateways.web_config_file(monitoring.root, monitoring.gateway("fraud"))
    kept = web_config.read_text()
    users = yaml.safe_load(kept)["basic_auth_users"]
    pricing = get_tenant(monitored, "pricing")
    users["pricing"] = bcrypt.hashpw(pricing.password.encode(), bcrypt.gensalt(4)).decode()
    try:
        web_config.write_text(yaml.safe_dump({"basic_auth_users": users}))
        observed = rows(monitored)
        probes = {path: seen for path, (expected, seen) in observed.items() if expected != OK}
        assert len(probes) == 2 and set(probes.values()) == {LEAK}, observed
    finally:
        web_config.write_text(kept)
    assert {seen for expected, seen in rows(monitored).values() if expected != OK} == {DENIED}
