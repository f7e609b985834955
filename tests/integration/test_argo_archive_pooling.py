"""Argo's workflow archive through PgBouncer: session pooling, because lib/pq's unnamed statements
do not survive transaction pooling.

issue 28: the archive goes through PgBouncer, whose platform setting is transaction pooling.
lib/pq (Argo's driver, through upper/db) syncs between Parse and Bind of the unnamed statement,
so under transaction pooling the Bind can run on a server where another client has since parsed
its own statement: the query answers the other client's question. PgBouncer's
max_prepared_statements tracks named statements only (pgbouncer issue 1288: unnamed statements
parsed in one transaction and bound in another, still open for 1.24). So the rendered PgBouncer
routes the `argo` database in session pooling (pipelines.cluster.PGBOUNCER_DATABASE_OPTIONS).

A PgBouncer of the stack's PostgreSQL runs with two routes to one database: one with the
platform's pool mode, one with the argo route's options, both from the rendering's own values.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from devstack import process
from devstack.stack import DB_USER, Stack
from pipelines.cluster import PGBOUNCER_DATABASE_OPTIONS, PGBOUNCER_SETTINGS
from tests.integration.libpq_unnamed_statement_stand_in import LibPqStandIn

pytestmark = pytest.mark.integration
DATABASE = "mlflow"  # any database of the stack's role


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pooler(stack: Stack) -> Iterator[int]:
    folder = stack.root / "pgbouncer-archive-pooling"
    folder.mkdir(exist_ok=True)
    port = free_port()
    server = f"host=127.0.0.1 port={stack.ports.postgres} dbname={DATABASE} user={DB_USER} password={stack.db_password}"
    (folder / "userlist.txt").write_text('"argo" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"platform = {server} pool_size=1",  # one server: the split is certain, not a race
                f"argo = {server} pool_size=2 {PGBOUNCER_DATABASE_OPTIONS['argo']}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'userlist.txt'}",
                f"pool_mode = {PGBOUNCER_SETTINGS['pool_mode']}",
                f"server_reset_query = {PGBOUNCER_SETTINGS['server_reset_query']}",
                "",
            ]
        )
    )
    process.give_to_service_user(folder)
    log = folder / "pgbouncer.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            process.as_service_user([process.find_binary("pgbouncer", "/usr/sbin"), str(folder / "pgbouncer.ini")]),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not process.port_open(port):
            assert child.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        child.terminate()
        child.wait(timeout=10)


def client(port: int, route: str) -> LibPqStandIn:
    return LibPqStandIn("127.0.0.1", port, "argo", route)


def test_the_stand_in_gets_its_own_answer_and_the_servers_error(pooler: int) -> None:
    """Known cases: one client alone answers its own query on either route; an error comes back."""
    for route in ("platform", "argo"):
        alone = client(pooler, route)
        assert alone.prepare("select 'a' where $1::int = 1")[-1] == b"Z"
        assert alone.execute("1") == ["a"]
        assert b"E" in alone.prepare("select * from no_such_table where $1::int = 1")  # refused at Parse
        assert alone.execute("1") == "unnamed prepared statement does not exist"  # as lib/pq never binds it
        alone.close()


def test_transaction_pooling_answers_another_clients_query_session_pooling_does_not(pooler: int) -> None:
    """issue 28: lib/pq's sequence, two archive clients interleaved. Under the platform's pool mode
    client a's Bind runs client b's statement; on the argo route each keeps its own."""
    answers = {}
    for route in ("platform", "argo"):
        a, b = client(pooler, route), client(pooler, route)
        a.prepare("select 'a' where $1::int = 1")
        b.prepare("select 'b' where $1::int = 1")  # a's server went back to the pool at its Sync
        answers[route] = (a.execute("1"), b.execute("1"))
        a.close()
        b.close()
    assert answers["platform"][0] != ["a"], answers  # the forbidden path: a wrong answer, or an error
    assert answers["argo"] == (["a"], ["b"]), answers


def test_the_rendered_pgbouncer_routes_argo_with_these_options() -> None:
    """What the test ran is what the cluster gets: the rendered ini carries the same options."""
    from pipelines.cluster import pgbouncer_config

    ini = pgbouncer_config()["data"]["pgbouncer.ini"]
    route = next(line for line in ini.splitlines() if line.startswith("argo = "))
    assert route.endswith(f"dbname=argo {PGBOUNCER_DATABASE_OPTIONS['argo']}")
    assert f"pool_mode = {PGBOUNCER_SETTINGS['pool_mode']}" in ini and PGBOUNCER_SETTINGS["pool_mode"] == "transaction"
