"""A tenant's own PgBouncer on the loopback stack (devstack/tenant_pgbouncer.py), its files only:
no server runs here (tests/integration/test_tenant_pgbouncer.py runs them)."""

from __future__ import annotations

import stat
from pathlib import Path

from components.platform.tenant_pool import LOOPBACK_CLIENT_CONNECTIONS
from devstack import tenant_pgbouncer
from devstack.stack import Ports, Stack


def test_a_tenant_pooler_follows_the_stack_to_new_ports(tmp_path: Path) -> None:
    """Its files route the tenant's registry only, to the stack's PostgreSQL, with the loopback's
    few client slots and the tenant's users; after the stack moves (dev down, dev up --port-base),
    the pooler routes to where PostgreSQL is now, not where it was."""
    stack = Stack(root=tmp_path, ports=Ports.from_base(15400))
    tenant_pgbouncer.write(stack, "fraud", 15999, {"fraud": "pw", "fraud_reader": "rpw"})
    (config,) = tenant_pgbouncer.configs(stack)
    ini = config.read_text()
    assert f"feast_fraud = host=127.0.0.1 port={stack.ports.postgres} dbname=feast_fraud\n[pgbouncer]" in ini
    assert f"max_client_conn = {LOOPBACK_CLIENT_CONNECTIONS}\n" in ini and "listen_port = 15999\n" in ini
    userlist = config.parent / "userlist.txt"
    assert userlist.read_text() == '"fraud" "pw"\n"fraud_reader" "rpw"\n'
    assert stat.S_IMODE(userlist.stat().st_mode) == 0o600
    moved = Stack(root=tmp_path, ports=Ports.from_base(16400))
    tenant_pgbouncer.point_at_postgres(moved, config)
    assert moved.ports.postgres != stack.ports.postgres
    assert f"feast_fraud = host=127.0.0.1 port={moved.ports.postgres} dbname=feast_fraud\n" in config.read_text()
    assert [row["service"] for row in tenant_pgbouncer.rows(moved)] == ["tenant-pgbouncer-fraud"]
    assert tenant_pgbouncer.rows(moved)[0]["address"].startswith("127.0.0.1:15999 ")
