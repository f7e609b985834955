"""The `make bench` scripts that measure the platform's services, on tiny inputs, on the session's
running stacks through their `--stack` option (benchmarks/bench_stack.py), as a developer runs them
on `mlops dev up`'s: each must print its table (tests/benchmark_runs.py). Each once started a stack
of its own, paying PostgreSQL's initdb, SeaweedFS's start and MLflow's schema creation again. The
fidelity benchmark (steps as pods, as tenant fraud) runs on the tenancy stack, as on `mlops dev up
--tenancy`, and must leave the tenant's own data alone.

The option's own contract is checked too: a root without a stack, or one whose services are not
all running, is refused with the fix, and nothing is measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.benchmark_runs import assert_printed_its_table, run_benchmark
from tests.integration.fidelity_tenant import RAW

pytestmark = pytest.mark.integration

# script, tiny arguments, a line of the table it prints at the end
ON_THE_STACK = {
    "platform_bench.py": (
        ["--rows", "4000", "--entities", "400", "--iterations", "30", "--metrics", "50"],
        "one log_batch call",
    ),
    "offline_store_bench.py": (["--rows", "3000"], "equal row for row"),
}


@pytest.mark.parametrize("script", sorted(ON_THE_STACK))
def test_benchmark_runs_on_tiny_inputs_on_the_running_stack(script: str, stack: Stack, tmp_path: Path) -> None:
    arguments, last_table_line = ON_THE_STACK[script]
    done = run_benchmark(script, [*arguments, "--stack", str(stack.root)], tmp_path)
    assert_printed_its_table(done, last_table_line)
    assert "starting services" not in done.stdout  # measured on the running stack, none of its own
    assert all(stack.running(service) for service in ("postgres", "pgbouncer", "redis", "s3", "mlflow"))


def test_the_stack_option_refuses_a_root_without_a_running_stack(stack: Stack, tmp_path: Path) -> None:
    empty = run_benchmark("offline_store_bench.py", ["--rows", "300", "--stack", str(tmp_path / "none")], tmp_path)
    assert empty.returncode != 0 and "no stack under" in empty.stderr and "mlops dev up" in empty.stderr, empty.stderr
    # the same stack's description with its pid files elsewhere: nothing of it runs there
    described = tmp_path / "described"
    described.mkdir()
    (described / "stack.json").write_text(stack.state_file.read_text())
    stopped = run_benchmark("offline_store_bench.py", ["--rows", "300", "--stack", str(described)], tmp_path)
    assert stopped.returncode != 0, stopped.stdout
    assert "postgres, pgbouncer, s3 not running" in stopped.stderr, stopped.stderr[-2000:]
    assert "offline store for one run" not in stopped.stdout


def _etag(stack: Stack, uri: str) -> str | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return str(stack.s3_client().head_object(Bucket=bucket, Key=key)["ETag"])
    except Exception as error:  # botocore's ClientError: absent
        assert "404" in str(error) or "Not Found" in str(error), error
        return None


@pytest.mark.image
def test_the_fidelity_benchmark_runs_on_tiny_inputs_on_the_tenancy_stack(
    tenancy_stack: Stack, component_image: str, tmp_path: Path
) -> None:
    """benchmarks/fidelity_bench.py end to end: the pipeline as pods through the Argo controller
    stand-in, then through kfp.local, on the running tenancy stack; its table printed, no stack of
    its own started, and the tenant's own raw extract (RAW, which the fidelity run reads) left as it
    was: the benchmark uploads its data under a key of its own. Nothing is asserted of the registry:
    at this size the gate may refuse the model."""
    stack = tenancy_stack
    raw = _etag(stack, RAW)
    arguments = ["--rows", "3000", "--image", component_image, "--stack", str(stack.root)]
    done = run_benchmark("fidelity_bench.py", arguments, tmp_path)
    assert_printed_its_table(done, "whole run")
    assert "starting services" not in done.stdout and "measuring on the running stack" in done.stdout
    assert _etag(stack, RAW) == raw
    assert _etag(stack, RAW.replace("latest.parquet", "bench-3000.parquet")) is not None
