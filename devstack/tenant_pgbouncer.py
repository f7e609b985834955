"""Each tenant's own PgBouncer on the loopback stack, as each tenant has its own Redis.

`mlops tenant add` gives the tenant a PgBouncer of its own (`<root>/tenant-pgbouncer-<name>/`,
its own port, kept in the tenant's file): it routes only the tenant's Feast registry database,
knows only the tenant's role, and has few client slots
(components.platform.tenant_pool.LOOPBACK_CLIENT_CONNECTIONS). `mlops tenant env` points the tenant's
registry URL at it. However many sockets one tenant holds on its own pooler, another tenant's
pooler and the platform's PgBouncer (MLflow) keep theirs (issue 29). `mlops dev up` starts the
tenants' poolers after the platform's PgBouncer, `mlops dev down` stops them, `mlops dev status`
lists them (`rows`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.platform.tenant_pool import LOOPBACK_CLIENT_CONNECTIONS, tenant_pgbouncer_ini
from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["PREFIX", "configs", "point_at_postgres", "rows", "service", "start", "start_all", "stop_all", "write"]

PREFIX = "tenant-pgbouncer-"
"""A tenant pooler's service name, folder and pid file: `tenant-pgbouncer-<tenant>`."""


def service(tenant: str) -> str:
    return f"{PREFIX}{tenant}"


def configs(stack: Stack) -> list[Path]:
    """The tenants' poolers, written at tenant add: `<root>/tenant-pgbouncer-<tenant>/pgbouncer.ini`."""
    return sorted(stack.root.glob(f"{PREFIX}*/pgbouncer.ini"))


def _port(config: Path) -> int:
    return next(int(line.split(" = ")[1]) for line in config.read_text().splitlines() if line.startswith("listen_port"))


def write(stack: Stack, tenant: str, port: int, users: dict[str, str]) -> None:
    """The pooler's files: its pgbouncer.ini and its users (the tenant's role, and any `users` adds)."""
    folder = stack.folder(service(tenant))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    process.write_private(
        folder / "userlist.txt", "".join(f'"{user}" "{password}"\n' for user, password in users.items())
    )
    ini = tenant_pgbouncer_ini(
        tenant,
        server=f"host=127.0.0.1 port={stack.ports.postgres}",
        listen_addr="127.0.0.1",
        listen_port=port,
        auth_file=str(folder / "userlist.txt"),
        max_client_conn=LOOPBACK_CLIENT_CONNECTIONS,
        extra=(("unix_socket_dir", str(folder)),),
    )
    process.write_private(folder / "pgbouncer.ini", ini)
    process.give_to_service_user(folder)


def point_at_postgres(stack: Stack, config: Path) -> None:
    """Route the pooler to the stack's PostgreSQL as it is now: the stack may have moved since the
    file was written (`mlops dev down`, then `mlops dev up --port-base N`)."""
    server = f"host=127.0.0.1 port={stack.ports.postgres}"
    process.write_private(config, re.sub(r"host=127\.0\.0\.1 port=\d+", server, config.read_text()))
    process.give_to_service_user(config.parent)


def start(stack: Stack, tenant: str) -> float:
    """Start the tenant's pooler, or make a running one reread its files (SIGHUP)."""
    name = service(tenant)
    config = stack.folder(name) / "pgbouncer.ini"
    if process.reload(stack.pid_file(name)):
        return 0.0
    point_at_postgres(stack, config)
    stack.log(name).touch()
    process.give_to_service_user(stack.log(name))
    argv = process.as_service_user([process.find_binary("pgbouncer", "/usr/sbin"), str(config)])
    pid = process.start(argv, stack.log(name), stack.pid_file(name))
    port = _port(config)
    return process.wait_until(
        lambda: process.port_open(port), what=f"PgBouncer ({name})", log=stack.log(name), pid=pid, timeout=30
    )


def start_all(stack: Stack) -> dict[str, float]:
    """Every tenant pooler that is not running (`mlops dev up`, after the platform's PgBouncer)."""
    stopped = [config.parent.name for config in configs(stack) if not stack.running(config.parent.name)]
    return {name: start(stack, name.removeprefix(PREFIX)) for name in stopped}


def stop_all(stack: Stack) -> list[str]:
    """Stop every tenant pooler (`mlops dev down`); returns the ones that were running."""
    return [config.parent.name for config in configs(stack) if process.stop(stack.pid_file(config.parent.name))]


def rows(stack: Stack) -> list[dict[str, Any]]:
    """`mlops dev status` rows of the tenants' poolers, shaped as Stack.status's."""
    return [
        {
            "service": config.parent.name,
            "running": stack.running(config.parent.name),
            "pid": process.read_pid(stack.pid_file(config.parent.name)),
            "address": f"127.0.0.1:{_port(config)} (transaction pooling, one tenant)",
            "log": str(stack.log(config.parent.name)),
        }
        for config in configs(stack)
    ]
