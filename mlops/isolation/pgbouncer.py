"""The connection-pool surface of `mlops isolation-check`: can A take the client slots B needs?

Issue 29, "one tenant can fill the shared PgBouncer's client slots": PgBouncer's max_client_conn
counts every client socket, whoever holds it. Each tenant now has a PgBouncer of its own
(devstack/tenant_pgbouncer.py here, pipelines/tenant_pooler.py on the cluster). The positive
control: A queries its own registry through its own PgBouncer. The probe: A opens client
connections through its PgBouncer until it is refused, holds them all, and B then connects to its
registry through B's own: DENIED when B still gets in, LEAK when A starved it. The probe keeps
opening up to HOLD_AT_MOST, past any one tenant's cap, so a PgBouncer shared with B (the one
before the fix admitted 1000) is filled too and shows as LEAK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import AUTHENTICATION_FAILED, Denied

if TYPE_CHECKING:
    import psycopg

    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "available"]

HOLD_AT_MOST = 2000
"""The most client sockets the probe holds: the shared PgBouncer's max_client_conn, and more."""
STARVED = ("max_client_conn", "timeout expired", "server closed the connection")
"""How a client that found no slot fails: PgBouncer's refusal, or no answer at all."""


def registry(tenant: Tenant, port: int | None = None) -> psycopg.Connection[Any]:
    """A connection to the tenant's Feast registry through its own PgBouncer (or one on `port`)."""
    import psycopg

    return psycopg.connect(
        host="127.0.0.1",
        port=port or tenant.pgbouncer_port,
        dbname=f"feast_{tenant.name}",
        user=tenant.name,
        password=tenant.password,
        connect_timeout=5,
        autocommit=True,
    )


def available(stack: Stack) -> str:
    """Empty when every tenant on the stack has its PgBouncer running; else what starts them."""
    from devstack import tenant_pgbouncer

    rows = tenant_pgbouncer.rows(stack)
    if not rows:
        return "no tenant has its own PgBouncer: mlops tenant add <name>"
    stopped = [row["service"] for row in rows if not row["running"]]
    return f"{', '.join(stopped)} not running: mlops dev up" if stopped else ""


def own_pooler(stack: Stack, tenant: Tenant) -> str:
    with registry(tenant) as connection:
        row = connection.execute("select current_database(), current_user").fetchone()
    return f"{row} through its own PgBouncer on :{tenant.pgbouncer_port}"


def hold_every_slot(scene: Scene) -> str:
    """A holds every client socket its PgBouncer gives it, then B connects through its own."""
    import psycopg

    attacker, target = scene.attacker, scene.target
    if not (attacker.pgbouncer_port and target.pgbouncer_port):
        raise RuntimeError("a tenant without its own PgBouncer (an older tenant file): mlops tenant add it again")
    held: list[psycopg.Connection[Any]] = []
    stopped_by = "no cap met"
    try:
        for _ in range(HOLD_AT_MOST):
            try:
                held.append(registry(attacker))
            except psycopg.OperationalError as error:
                stopped_by = " ".join(str(error).split())[-100:]
                if not held:  # not one socket: A's own login failed, which proves nothing
                    raise RuntimeError(f"PgBouncer {stopped_by}: {AUTHENTICATION_FAILED}") from error
                break
        try:
            with registry(target) as connection:
                connection.execute("select 1")
        except psycopg.OperationalError as error:
            text = " ".join(str(error).split())
            if any(sign in text for sign in STARVED):
                return f"holding {len(held)} client sockets, A starved the target's registry: {text[-100:]}"
            raise
    finally:
        for connection in held:
            connection.close()
    raise Denied(f"A held {len(held)} client sockets ({stopped_by}); the target still queried its registry")


OWN = (("own: registry through its own pgbouncer", own_pooler),)
PROBES = (("pgbouncer: A holds every client slot it may", hold_every_slot),)
