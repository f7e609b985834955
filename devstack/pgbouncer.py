"""The platform's PgBouncer on the loopback stack: transaction pooling in front of PostgreSQL.

As on the cluster, MLflow's backend (and any platform client) reaches PostgreSQL through it, so a
parallel sweep's connections share a small server pool (`Stack.pool_size`) rather than exhausting
`max_connections`. It knows the platform's role only (DB_USER, scram-sha-256); each tenant has a
PgBouncer of its own (devstack.tenant_pgbouncer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devstack import process
from devstack.postgres import DB_USER, run_sql

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["start_pgbouncer", "write_userlist"]


def write_userlist(stack: Stack) -> None:
    """The pooler's users: the platform's role and its password, nobody else (0600)."""
    folder = stack.folder("pgbouncer")
    process.write_private(folder / "userlist.txt", f'"{DB_USER}" "{stack.db_password}"\n')


def start_pgbouncer(stack: Stack) -> float:
    """Write pgbouncer.ini and the users, start it, wait until a query passes through; seconds to ready."""
    folder = stack.folder("pgbouncer")
    folder.mkdir(parents=True, exist_ok=True)
    write_userlist(stack)
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host=127.0.0.1 port={stack.ports.postgres}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {stack.ports.pgbouncer}",
                f"unix_socket_dir = {folder}",
                "auth_type = scram-sha-256",
                f"auth_file = {folder / 'userlist.txt'}",
                "pool_mode = transaction",
                "max_client_conn = 1000",
                f"default_pool_size = {stack.pool_size}",
                "reserve_pool_size = 0",
                "server_reset_query = DISCARD ALL",
                "ignore_startup_parameters = extra_float_digits,options",
                "",
            ]
        )
    )
    process.give_to_service_user(folder)
    stack.log("pgbouncer").touch()
    process.give_to_service_user(stack.log("pgbouncer"))
    argv = process.as_service_user([process.find_binary("pgbouncer", "/usr/sbin"), str(folder / "pgbouncer.ini")])
    pid = process.start(argv, stack.log("pgbouncer"), stack.pid_file("pgbouncer"))
    return process.wait_until(
        lambda: run_sql(stack, "mlflow", "select 1", port=stack.ports.pgbouncer) is not None,
        what="PgBouncer",
        log=stack.log("pgbouncer"),
        pid=pid,
        timeout=30,
    )
