"""The stack's Redis servers: the platform's online store, and each tenant's own.

Redis 7's `redis-server` as the platform runs it in production: no snapshots and no append-only
file (the online store is rebuilt by materialization), a memory limit with an evicting policy,
loopback only. The platform's instance takes its port and limit from the Stack; a tenant's
(written at `mlops tenant add` by devstack.tenants as `<root>/redis-<tenant>/redis.conf`) takes its
own config file, where only the platform's admin user may ping it unasked. (Named redis_server so
that it is never mistaken for the `redis` client package.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["ping", "start_instance", "start_redis", "start_tenant_redis"]


def start_redis(stack: Stack) -> float:
    """The platform's online store on the stack's Redis port; seconds to ready."""
    arguments = ["--port", str(stack.ports.redis), "--maxmemory", stack.redis_maxmemory]
    return start_instance(stack, "redis", arguments, ping(stack))


def start_tenant_redis(stack: Stack) -> None:
    """Each tenant's own online store (devstack.tenants) that is not running yet."""
    for config in stack.tenant_redis_configs():
        service = config.parent.name
        if not stack.running(service):
            start_instance(stack, service, [str(config)], ping(stack, config))


def ping(stack: Stack, config: Path | None = None) -> Callable[[], bool]:
    """A check that the platform's instance (or the tenant's one `config` describes) answers PING."""
    import redis

    if config is None:
        client = redis.Redis(host="127.0.0.1", port=stack.ports.redis, socket_connect_timeout=1)
    else:  # a tenant's instance: only the platform's admin user may ping it unasked
        port = next(int(line.split()[1]) for line in config.read_text().splitlines() if line.startswith("port "))
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            username="admin",
            password=stack.redis_admin_password,
            socket_connect_timeout=1,
        )
    return lambda: bool(client.ping())


def start_instance(stack: Stack, service: str, arguments: list[str], ready: Callable[[], bool]) -> float:
    """One redis-server: no snapshots, an evicting memory limit, loopback only; `arguments` first."""
    folder = stack.folder(service)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    argv = [
        process.find_binary("redis-server"),
        *arguments,
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
        "--daemonize",
        "no",
    ]
    pid = process.start(argv, stack.log(service), stack.pid_file(service))
    return process.wait_until(ready, what=f"Redis ({service})", log=stack.log(service), pid=pid, timeout=30)
