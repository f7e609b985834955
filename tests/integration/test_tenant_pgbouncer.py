"""Issue 29, "one tenant can fill the shared PgBouncer's client slots": each tenant has a PgBouncer
of its own (devstack.tenant_pgbouncer), so pricing holding every client socket its pooler allows
leaves fraud's registry, and the platform's MLflow, connecting.

On the session's tenancy stack (tests/integration/conftest.py `tenancy_stack`, the tenants of
manifests/tenants/tenants.yaml on it), through the endpoints `mlops tenant env` gives each tenant.
Positive control first (fraud queries its registry through its pooler), then the starvation path
(pricing holds every slot; fraud still connects), then the control broken on purpose (fraud sent
to pricing's pooler is refused with PgBouncer's max_client_conn answer: the test sees starvation
when it happens). Before the fix every tenant's registry URL named the one platform PgBouncer
(max_client_conn 1000), so pricing's cap and the two endpoints below could not hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from components.platform.tenant_pool import LOOPBACK_CLIENT_CONNECTIONS, MAX_CLIENT_CONN_REFUSAL
from devstack.postgres import run_sql
from devstack.stack import DB_USER, Stack
from devstack.tenants import Tenant, get_tenant, tenant_environment
from tests.integration.conftest import DECLARED_TENANTS as TENANTS
from tests.integration.conftest import mlops, platform_env

pytestmark = pytest.mark.integration


def registry(stack: Stack, tenant: Tenant, *, port: int | None = None) -> psycopg.Connection[Any]:
    """A connection to the tenant's Feast registry as `mlops tenant env` names it (or on `port`)."""
    url = urlsplit(tenant_environment(stack, tenant)["MLOPS_FEAST_REGISTRY_URL"])
    return psycopg.connect(
        host=url.hostname,
        port=port or url.port,
        dbname=url.path.lstrip("/"),
        user=url.username,
        password=tenant.password,
        connect_timeout=5,
        autocommit=True,
    )


@pytest.fixture
def pricing_holds_every_slot(tenants_stack: Stack) -> Iterator[tuple[int, str]]:
    """Pricing opens client connections through its own pooler until it is refused, and holds them."""
    pricing = get_tenant(tenants_stack, "pricing")
    held: list[psycopg.Connection[Any]] = []
    refusal = ""
    try:
        for _ in range(LOOPBACK_CLIENT_CONNECTIONS + 5):
            try:
                held.append(registry(tenants_stack, pricing))
            except psycopg.OperationalError as error:
                refusal = str(error)
                break
        yield len(held), refusal
    finally:
        for connection in held:
            connection.close()


def test_each_tenant_registry_url_names_its_own_pooler(tenants_stack: Stack) -> None:
    """fraud and pricing each reach their registry through a PgBouncer that is neither the other's
    nor the platform's (before the fix all three were the platform's port)."""
    urls = {name: tenant_environment(tenants_stack, get_tenant(tenants_stack, name)) for name in TENANTS}
    ports = {name: urlsplit(env["MLOPS_FEAST_REGISTRY_URL"]).port for name, env in urls.items()}
    assert len(set(ports.values())) == len(TENANTS), ports
    assert tenants_stack.ports.pgbouncer not in ports.values(), ports
    assert all(port == get_tenant(tenants_stack, name).pgbouncer_port for name, port in ports.items()), ports


def test_fraud_still_connects_while_pricing_holds_every_socket_it_may(
    tenants_stack: Stack, pricing_holds_every_slot: tuple[int, str]
) -> None:
    """issue 29: one tenant can fill the shared PgBouncer's client slots."""
    fraud, pricing = get_tenant(tenants_stack, "fraud"), get_tenant(tenants_stack, "pricing")
    held, refusal = pricing_holds_every_slot
    # pricing got exactly its slots, and the next one was PgBouncer's max_client_conn refusal
    assert held == LOOPBACK_CLIENT_CONNECTIONS, (held, refusal)
    assert MAX_CLIENT_CONN_REFUSAL in refusal, refusal
    # positive control and the starvation path: fraud queries its registry through its own pooler
    with registry(tenants_stack, fraud) as connection:
        row = connection.execute("select current_database(), current_user").fetchone()
    assert row == ("feast_fraud", "fraud"), row
    # the platform's PgBouncer (MLflow's backend) still serves the platform's role
    assert run_sql(tenants_stack, "mlflow", "select 1", port=tenants_stack.ports.pgbouncer) == [(1,)]
    # broken control: fraud sent to pricing's pooler meets the starvation the test looks for
    with pytest.raises(psycopg.OperationalError, match=r"max_client_conn"):
        registry(tenants_stack, fraud, port=pricing.pgbouncer_port)


def test_a_pooler_admits_its_own_tenant_only(tenants_stack: Stack) -> None:
    """With free slots, pricing's pooler still refuses fraud's role, and the platform's refuses both
    tenants (a tenant's sockets belong on its own pooler). Positive control: each on its own."""
    fraud, pricing = get_tenant(tenants_stack, "fraud"), get_tenant(tenants_stack, "pricing")
    for tenant in (fraud, pricing):
        with registry(tenants_stack, tenant) as connection:
            assert connection.execute("select 1").fetchone() == (1,)
    for tenant, port in ((fraud, pricing.pgbouncer_port), (pricing, tenants_stack.ports.pgbouncer)):
        with pytest.raises(psycopg.OperationalError, match=r"SASL authentication failed|no such database"):
            registry(tenants_stack, tenant, port=port)
    # the platform's role still goes through the platform's PgBouncer
    assert run_sql(
        tenants_stack, "mlflow", f"select current_user = '{DB_USER}'", port=tenants_stack.ports.pgbouncer
    ) == [(True,)]


def test_dev_status_lists_each_tenant_pooler(tenants_stack: Stack, tmp_path: Any) -> None:
    """`mlops dev status` shows every tenant's PgBouncer as part of the pgbouncer service."""
    result = mlops(
        platform_env(tenants_stack, tmp_path), "dev", "status", "--dir", str(tenants_stack.root), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in TENANTS:
        port = get_tenant(tenants_stack, name).pgbouncer_port
        assert f"tenant-pgbouncer-{name}" in result.stdout and f"127.0.0.1:{port}" in result.stdout, result.stdout


def test_doctor_checks_postgres_through_the_tenants_own_pooler(
    tenants_stack: Stack, pricing_holds_every_slot: tuple[int, str]
) -> None:
    """`mlops doctor`'s postgres-connections check, with a tenant's environment, goes through that
    tenant's pooler: fraud's passes while pricing holds every slot of its own, and pricing's names
    the refusal (the check sees a starved pooler)."""
    from mlops.doctor import check_postgres_connections
    from mlops.findings import FAIL, OK, Context

    fraud, pricing = get_tenant(tenants_stack, "fraud"), get_tenant(tenants_stack, "pricing")
    found = check_postgres_connections(Context(env=tenant_environment(tenants_stack, fraud), objects=[]))
    assert found.status == OK and f"through a pooler on :{fraud.pgbouncer_port}" in found.detail, found
    starved = check_postgres_connections(Context(env=tenant_environment(tenants_stack, pricing), objects=[]))
    assert starved.status == FAIL and "max_client_conn" in starved.detail, starved


def test_isolation_check_row_pricing_holds_every_socket_it_may_fraud_still_connects(tenants_stack: Stack) -> None:
    """issue 29: `mlops isolation-check --as pricing --target fraud` tries the starvation path. Its
    positive control (pricing queries its own registry through its own PgBouncer) is OK and the
    path DENIED; broken on purpose (fraud's registry reached through pricing's PgBouncer, as when
    both shared one) the same probe reports LEAK."""
    from dataclasses import replace
    from functools import partial

    from mlops.isolation import DENIED, ERROR, LEAK, OK, Scene, check
    from mlops.isolation.outcomes import classify
    from mlops.isolation.pgbouncer import PROBES, hold_every_slot

    fraud, pricing = get_tenant(tenants_stack, "fraud"), get_tenant(tenants_stack, "pricing")
    rows = {row.path: row for row in check(tenants_stack, pricing, fraud, surfaces=["pgbouncer"])}
    assert rows["own: registry through its own pgbouncer"].observed == OK, rows
    (path, _probe), *_ = PROBES
    assert (rows[path].expected, rows[path].observed) == (DENIED, DENIED), rows[path]
    assert f"held {LOOPBACK_CLIENT_CONNECTIONS} client sockets" in rows[path].detail, rows[path]
    shared_pool = Scene(tenants_stack, pricing, replace(fraud, pgbouncer_port=pricing.pgbouncer_port), {})
    broken = classify(path, partial(hold_every_slot, shared_pool))
    assert broken.observed == LEAK and MAX_CLIENT_CONN_REFUSAL in broken.detail, broken
    # an attacker whose own login fails held nothing: that proves nothing, never DENIED
    locked_out = Scene(tenants_stack, replace(pricing, password="not-it"), fraud, {})
    unproven = classify(path, partial(hold_every_slot, locked_out))
    assert unproven.observed == ERROR and "authentication failed" in unproven.detail, unproven
