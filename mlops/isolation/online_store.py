"""Isolation probes on the online store: each tenant's own Redis instance and its ACL user.

Each tenant's features live in a Redis of its own, reached with a user that may read and write
keys but not administer the server. The probes log into the target's instance (as the attacker's
user and as the default user), write under the target's project name, and try admin commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import redis_client, redis_key

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES"]

OWN_PATH = "own: redis own online store"


def own_store(stack: Stack, tenant: Tenant) -> str:
    """Positive control: HSET, HGET and DEL in the tenant's own online store."""
    client = redis_client(stack, tenant)
    key = redis_key(tenant.name) + b"-control"
    client.hset(key, mapping={"_ts:control": b"1"})
    read = client.hget(key, "_ts:control")
    client.delete(key)
    if read != b"1":
        raise RuntimeError(f"own key read back {read!r}")
    return f"HSET, HGET and DEL in its own online store (127.0.0.1:{tenant.redis_port})"


def target_store(scene: Scene) -> str:
    """Into the target's instance: as the attacker's user, then as the default user."""
    import redis

    for username in (None, ""):
        try:
            client = redis_client(scene.stack, scene.attacker, on=scene.target, username=username)
            keys = client.scan(count=100)[1]
        except redis.exceptions.AuthenticationError:
            if not scene.own_control_passed(OWN_PATH):
                raise  # the attacker's credentials proved nothing: ERROR, not DENIED
            continue
        return f"SCAN of the target's store as {username or scene.attacker.name!r} listed {len(keys)} keys"
    raise Denied("the target's store knows neither the attacker's user nor an open default user")


def poison(scene: Scene) -> str:
    """`--set materialize.project=<target>`: a far-future `_ts:` under the target's project's keys."""
    key = redis_key(scene.target.name)
    redis_client(scene.stack, scene.attacker).hset(key, mapping={"_ts:probe": b"far future"})
    if redis_client(scene.stack, scene.target).hget(key, "_ts:probe") != b"far future":
        raise Denied("written into the attacker's own store only; the target's keys are untouched")
    return "the target's online store now holds the attacker's far-future timestamp"


def config_set(scene: Scene) -> str:
    redis_client(scene.stack, scene.attacker).config_set("maxmemory-samples", 5)  # the default: harmless if it leaks
    return "CONFIG SET ran: the attacker can change the store's memory limit and policy"


def flushall(scene: Scene) -> str:
    redis_client(scene.stack, scene.attacker).flushall()
    return "FLUSHALL ran on the store the attacker reaches"


OWN = ((OWN_PATH, own_store),)
PROBES = (
    ("redis SCAN target store", target_store),
    ("redis write target project keys", poison),
    ("redis CONFIG SET", config_set),
    ("redis FLUSHALL", flushall),
)
