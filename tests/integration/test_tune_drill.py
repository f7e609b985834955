"""The connection storm of a parallel sweep: 4 trials at once logging to the platform's MLflow
server on a PostgreSQL with few connections. Straight to PostgreSQL the tracking server's
workers run out of connections and trials fail; through PgBouncer (transaction pooling, 3 server
connections) the same sweep commits every trial. Katib's DB manager meets the same storm, and
the platform routes it the same way (manifests/katib/).

The storm is scaled to the server (it was 8 trials on 4 workers and max_connections=10; each
worker's start cost seconds of CPU, twice): PostgreSQL has one connection per worker left once
the server is up, so a sweep one trial at a time would fit, and trials at once cannot."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import process
from devstack.stack import DB_USER, PORT_SPAN, Ports, Stack
from tests.integration.conftest import mlops, platform_env

pytestmark = pytest.mark.integration

TRIALS = "4"
WORKERS = 2
MAX_CONNECTIONS = 8
"""3 of them reserved for superusers; of the 5 left, PgBouncer keeps the one its readiness check
opened, and the server's parent process two (its tracking and registry stores, which it opens
before it starts the workers): one left for each worker's pool."""
REFUSED = ("too many clients", "remaining connection slots")


@pytest.fixture(scope="module")
def starved() -> Iterator[Stack]:
    """max_connections=8 (5 for applications), a tracking server of 2 workers, each with its own
    connection pool, straight to PostgreSQL; PgBouncer beside it, pooling 3 server connections."""
    root = Path(tempfile.mkdtemp(prefix="mlops-sweep-"))
    root.chmod(0o755)
    stack = Stack(
        root=root,
        ports=Ports.from_base(process.free_port_base(PORT_SPAN)),
        max_connections=MAX_CONNECTIONS,
        pool_size=3,
        mlflow_workers=WORKERS,
        mlflow_through_pgbouncer=False,
    )
    try:
        stack.up(("postgres", "pgbouncer", "s3", "mlflow"))
        yield stack
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def _sweep(stack: Stack, home: Path, request_timeout: int) -> tuple[int, str]:
    # no client retries: a refused request shows as the failed trial it is, not as a slow one
    env = platform_env(
        stack, home, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(request_timeout)
    )
    rounds = 'tune.space.num_boost_round={"type": "int", "low": 10, "high": 40}'
    done = mlops(env, "tune", "fraud", "--trials", TRIALS, "--parallel", TRIALS, "--rows", "3000",
                 "--set", rounds, "--out", str(home), timeout=900)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_parallel_sweep_exhausts_direct_connections_and_commits_through_pgbouncer(
    starved: Stack, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from devstack.postgres import run_sql

    # the storm's premise: once the server is up, one connection is left per worker (so it is the
    # trials at once that exhaust them, not the workers' first connections)
    reserved = int(run_sql(starved, "postgres", "show superuser_reserved_connections", superuser=True)[0][0])
    held = run_sql(starved, "postgres", f"select count(*) from pg_stat_activity where usename = '{DB_USER}'",
                   superuser=True)[0][0]  # fmt: skip
    assert MAX_CONNECTIONS - reserved - held == WORKERS, (reserved, held)

    # a request the starved server holds waits for its pool; 5 s is long past a served request's time
    code, output = _sweep(starved, tmp_path / "direct", request_timeout=5)
    server_log = starved.log("mlflow").read_text(errors="replace")
    assert any(word in server_log for word in REFUSED), (server_log[-2000:], output[-2000:])
    # trials failed (exit 1), or the search itself lost the tracking server (75: transient)
    assert code in (1, 75) and "Trial" in output and "failed" in output, output[-3000:]

    # Killed, not stopped: its workers may still wait on their pools for requests nobody reads any
    # more, and a polite stop waited for them (1.7 to 14.5 s measured) before the same end.
    # PostgreSQL frees their connections as their sockets close; PgBouncer's sweep needs none of them.
    process.stop(starved.pid_file("mlflow"), signal.SIGKILL)
    assert not starved.running("mlflow")
    starved.mlflow_through_pgbouncer = True
    starved.log("mlflow").write_text("")
    starved.up(("mlflow",))
    code, output = _sweep(starved, tmp_path / "pooled", request_timeout=20)
    assert code == 0, output[-3000:]
    assert not any(word in starved.log("mlflow").read_text(errors="replace") for word in REFUSED)
    parent = next(line.split()[-1] for line in output.splitlines() if "MLflow parent run" in line)
    client = MlflowClient(tracking_uri=starved.tracking_uri)
    run = client.get_run(parent)
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == int(TRIALS) and {child.info.status for child in children} == {"FINISHED"}
    assert all("roc_auc" in child.data.metrics for child in children)
