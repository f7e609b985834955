"""Isolation probes on PostgreSQL: the target's Feast registry database, offline schema, catalogs, slots.

Each tenant has a role with a connection limit, its own Feast registry database and a schema in
its offline database. The probes connect as the attacker's role, as a notebook would, and try to
reach the target's: the role's privileges and `pg_hba` are the only barriers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import offline_database, postgres

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES"]


def own_schema(stack: Stack, tenant: Tenant) -> str:
    """Positive control: a table created and read in the tenant's own schema."""
    with postgres(stack, tenant, offline_database(tenant)) as connection:
        connection.execute(f"create table if not exists {tenant.name}.isolation_control (x int)")
        connection.execute(f"select count(*) from {tenant.name}.isolation_control")
    return f"created and read a table in schema {tenant.name}"


def own_registry(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the tenant reaches its own Feast registry database."""
    with postgres(stack, tenant, f"feast_{tenant.name}") as connection:
        connection.execute("select 1")
    return f"connected to its Feast registry database feast_{tenant.name}"


def feast_registry(scene: Scene) -> str:
    with postgres(scene.stack, scene.attacker, f"feast_{scene.target.name}") as connection:
        connection.execute("select 1")
    return f"connected to the target's Feast registry database feast_{scene.target.name}"


def offline_schema(scene: Scene) -> str:
    import psycopg2

    # raw psycopg2, as a notebook would: the role's privileges are the only barrier
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=scene.stack.ports.postgres,
        dbname=offline_database(scene.target),
        user=scene.attacker.name,
        password=scene.attacker.password,
        connect_timeout=3,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"select secret from {scene.target.name}.probe")
            rows = cursor.fetchall()
    finally:
        connection.close()
    return f"read {len(rows)} rows of {scene.target.name}.probe"


def catalog_metadata(scene: Scene) -> str:
    """From A's own database, the catalogs (pg_class, pg_attribute) that every role may read."""
    with postgres(scene.stack, scene.attacker, offline_database(scene.attacker)) as connection:
        rows = connection.execute(
            "select n.nspname, c.relname, a.attname from pg_attribute a"
            " join pg_class c on a.attrelid = c.oid join pg_namespace n on c.relnamespace = n.oid"
            " where n.nspname = %s and a.attnum > 0",
            (scene.target.name,),
        ).fetchall()
    if not rows:
        raise Denied("the catalogs A can read hold nothing of the target's tables")
    return f"the catalogs name the target's tables and columns: {sorted({f'{r[0]}.{r[1]}.{r[2]}' for r in rows})}"


def connection_exhaustion(scene: Scene) -> str:
    """Hold as many direct connections as PostgreSQL gives A, then see whether B still gets one."""
    import psycopg

    stack, attacker, target = scene.stack, scene.attacker, scene.target
    held: list[Any] = []
    stopped_by = ""
    try:
        for _ in range(stack.max_connections):
            try:
                held.append(postgres(stack, attacker, offline_database(attacker)))
            except psycopg.OperationalError as error:
                stopped_by = " ".join(str(error).split())
                break
        try:
            with postgres(stack, target, offline_database(target)) as connection:
                connection.execute("select 1")
        except psycopg.OperationalError as error:
            return f"holding {len(held)} connections, A starved the target: {str(error).strip()[-80:]}"
    finally:
        for connection in held:
            connection.close()
    if "too many connections for role" in stopped_by:
        raise Denied(f"the role's connection limit stopped it at {len(held)}; the target still connects")
    return f"held {len(held)} connections ({stopped_by[-100:] or 'no limit met'}); the target got in this time"


OWN = (
    ("own: postgres own schema", own_schema),
    ("own: feast own registry db", own_registry),
)
PROBES = (
    ("feast target registry db", feast_registry),
    ("postgres target schema", offline_schema),
    ("postgres target catalog metadata", catalog_metadata),
    ("postgres connection exhaustion", connection_exhaustion),
)
