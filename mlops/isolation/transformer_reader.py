"""Isolation probes of the scoring transformer's identity: the tenant's reader (issue 29).

The transformer answers requests, so whoever subverts it holds its credentials. They are the
tenant's reader (components/platform/readonly.py), not the tenant's read-write identities: it reads the
online store and the Feast registry and writes neither, so a subverted transformer cannot forge
the features its model scores. The controls read both as the attacker's reader; the probes try
to write both with it. A tenant added before the reader existed has none (`mlops tenant add
<name>` again gives it one): its controls fail, and the rows prove nothing (ERROR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.platform.readonly import reader_name
from mlops.isolation.scene import postgres, redis_client, redis_key

if TYPE_CHECKING:
    import psycopg

    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES"]

CONTROL_TABLE = "isolation_reader_control"  # made by the tenant in its registry database


def reader_redis(stack: Stack, tenant: Tenant) -> Any:
    """A client of the tenant's own Redis as its reader (no retry: a refused login is an answer)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=tenant.redis_port, username=reader_name(tenant.name),
                       password=tenant.reader_password or None, retry=Retry(NoBackoff(), 0),
                       socket_connect_timeout=2, socket_timeout=5)  # fmt: skip


def reader_registry(stack: Stack, tenant: Tenant) -> psycopg.Connection[Any]:
    """The tenant's registry database as its reader."""
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, dbname=f"feast_{tenant.name}",
                           user=reader_name(tenant.name), password=tenant.reader_password, connect_timeout=3,
                           autocommit=True)  # fmt: skip


def reads_online_store(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the tenant writes a feature hash, its reader reads it back with HMGET."""
    key = redis_key(tenant.name) + b"-reader-control"
    redis_client(stack, tenant).hset(key, mapping={"_ts:control": b"1"})
    try:
        read = reader_redis(stack, tenant).hmget(key, ["_ts:control"])
    finally:
        redis_client(stack, tenant).delete(key)
    if read != [b"1"]:
        raise RuntimeError(f"the reader read back {read!r}")
    return f"HMGET of its own feature hash as {reader_name(tenant.name)}"


def reads_registry(stack: Stack, tenant: Tenant) -> str:
    """Positive control: a table the tenant's role makes in its registry, SELECTed by its reader."""
    with postgres(stack, tenant, f"feast_{tenant.name}") as connection:
        connection.execute(f"create table if not exists {CONTROL_TABLE} (x int)")
    with reader_registry(stack, tenant) as connection:
        connection.execute(f"select count(*) from {CONTROL_TABLE}")
    return f"SELECT in its registry feast_{tenant.name} as {reader_name(tenant.name)}"


def writes_online_store(scene: Scene) -> str:
    """HSET a feature hash in the attacker's own store with its transformer's credentials."""
    key = redis_key(scene.attacker.name) + b"-reader-probe"
    reader_redis(scene.stack, scene.attacker).hset(key, mapping={"_ts:probe": b"forged"})
    redis_client(scene.stack, scene.attacker).delete(key)
    return "the transformer's credentials wrote a feature hash: a subverted transformer forges what its model scores"


def writes_registry(scene: Scene) -> str:
    """INSERT into the attacker's registry database with its transformer's credentials."""
    with reader_registry(scene.stack, scene.attacker) as connection:
        connection.execute(f"insert into {CONTROL_TABLE} values (1)")
    return "the transformer's credentials wrote into the Feast registry: it could redefine the feature service"


OWN = (
    ("own: transformer reader reads its online store", reads_online_store),
    ("own: transformer reader reads its registry", reads_registry),
)
PROBES = (
    ("transformer credentials write the online store", writes_online_store),
    ("transformer credentials write the registry", writes_registry),
)
