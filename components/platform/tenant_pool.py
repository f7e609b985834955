"""A tenant's own PgBouncer: what the cluster's (pipelines/tenant_pooler.py) and the loopback stack's
(devstack/tenant_pgbouncer.py) tenant poolers share, so both are rendered from one place.

Why one per tenant (issue 29, "one tenant can fill the shared PgBouncer's client slots"): a
PgBouncer's `max_client_conn` counts every client socket, whoever holds it, and the per-user caps
of PgBouncer 1.18 (`max_user_connections`) limit server connections only. With one PgBouncer for
everyone, a tenant holding its idle sockets up to `max_client_conn` locks every other tenant, and
the platform's own MLflow, Katib and Argo archive, out of PostgreSQL. Each tenant therefore gets a
PgBouncer of its own that routes only its Feast registry database, admits only its role, and whose
client slots only its own pods can take; the platform's PgBouncer keeps the platform's services.
(Per-user and per-database client caps, `max_user_client_connections`, only exist from PgBouncer
1.24; the PgBouncer the loopback stack and CI install is 1.18.)
"""

from __future__ import annotations

from components.platform.settings import TENANT_SERVER_CONNECTIONS

__all__ = [
    "CLIENTS_PER_POD",
    "LOOPBACK_CLIENT_CONNECTIONS",
    "MAX_CLIENT_CONN_REFUSAL",
    "client_connections",
    "registry_database",
    "tenant_pgbouncer_ini",
]

CLIENTS_PER_POD = 2
"""Client connections a tenant's pooler admits per pod its quota allows (quota.pods): a step, a
Feast CronJob or a transformer holds one registry connection at a time (SQLAlchemy's pool keeps
one idle), so two each leaves headroom without letting a stray loop hold thousands."""

LOOPBACK_CLIENT_CONNECTIONS = 20
"""max_client_conn of a tenant's pooler on the loopback stack. A loopback tenant (`mlops tenant add`)
has no declaration in manifests/tenants/tenants.yaml (devstack does not import the pipelines layer),
so it gets this small fixed number: one person's pipeline and transformer."""

MAX_CLIENT_CONN_REFUSAL = "no more connections allowed (max_client_conn)"
"""What PgBouncer answers the client past its max_client_conn."""


def client_connections(pods: int) -> int:
    """max_client_conn of a tenant's pooler on the cluster, from the pods its quota allows."""
    return pods * CLIENTS_PER_POD


def registry_database(tenant: str) -> str:
    """The one database a tenant's pooler routes: its Feast registry (as cluster_settings names it)."""
    return f"feast_{tenant}"


def tenant_pgbouncer_ini(
    tenant: str,
    *,
    server: str,
    listen_addr: str,
    listen_port: int,
    auth_file: str,
    max_client_conn: int,
    databases: tuple[str, ...] = (),
    extra: tuple[tuple[str, str], ...] = (),
) -> str:
    """The pgbouncer.ini of `tenant`'s own pooler: its registry database (and `databases`) on
    `server` ("host=... port=..."), transaction pooling, its role's server connections capped,
    `max_client_conn` client slots that no other tenant can reach."""
    routed = (registry_database(tenant), *databases)
    settings = (
        ("listen_addr", listen_addr),
        ("listen_port", str(listen_port)),
        *extra,
        ("pool_mode", "transaction"),
        ("max_client_conn", str(max_client_conn)),
        ("default_pool_size", str(TENANT_SERVER_CONNECTIONS)),
        ("reserve_pool_size", "0"),
        ("max_db_connections", str(TENANT_SERVER_CONNECTIONS)),
        ("server_reset_query", "DISCARD ALL"),
        ("auth_type", "scram-sha-256"),
        ("auth_file", auth_file),
        ("ignore_startup_parameters", "extra_float_digits,options"),
    )
    lines = ["[databases]", *(f"{database} = {server} dbname={database}" for database in routed)]
    lines += ["[pgbouncer]", *(f"{key} = {value}" for key, value in settings)]
    lines += ["[users]", f"{tenant} = max_user_connections={TENANT_SERVER_CONNECTIONS}"]
    return "\n".join(lines) + "\n"
