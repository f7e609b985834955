"""Failure drills against the real services: each known way a private platform breaks, staged.

Redis loses its data; the tracking server goes down; a client lacks the S3 endpoint, holds
wrong keys or meets an S3 that answers 500; eight writers register one artifact at once;
more writers than PostgreSQL has connections; a writer is killed mid-upload. (The local-disk
kill drill is tests/components/test_kill_mid_write.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
import redis

from devstack.stack import DB_USER, Stack
from pipelines.spec import IDEMPOTENT_WRITE
from tests import cli_runner
from tests.conftest import REPO
from tests.integration.conftest import mlops, platform_env
from tests.loopback_http import QuietHandler, serving

pytestmark = pytest.mark.integration


def python_module(
    module: str, *args: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m module ARGS` from the checkout, in a process of its own with `env` (whole): a child of
    the session's warm worker, as tests/cli_runner.py runs `mlops` (its libraries imported once, not
    again per call), or a fresh interpreter where there is none or MLOPS_TEST_CLI_ENGINE=subprocess."""
    argv = [sys.executable, "-m", module, *args]
    if os.environ.get(cli_runner.ENGINE_VARIABLE) != "subprocess":
        from pipelines import warm_worker

        try:
            worker = warm_worker.connect()
        except warm_worker.WarmUnavailable:
            worker = None
        if worker is not None:
            code, out, err = worker.run_module(module, args, env, REPO, timeout)
            return subprocess.CompletedProcess(argv, code, out, err)
    return subprocess.run(argv, cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)


def online_values(platform_run: dict[str, Any], users: list[int]) -> dict[str, list[Any]]:
    """Read features the way a scoring service does, in a child with the platform environment
    (tests/integration/online_read.py)."""
    store_dir = str(platform_run["home"] / "feast" / "fraud")
    result = python_module(
        "tests.integration.online_read", store_dir, json.dumps(users), env=platform_run["env"], timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    values: dict[str, list[Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def register_args(platform_run: dict[str, Any], out: Path, model_name: str) -> list[str]:
    run_dir = platform_run["run_dir"]
    return [
        "step",
        "register",
        "--model",
        str(run_dir / "train" / "model"),
        "--model-metadata",
        str(run_dir / "train" / "metadata"),
        "--metrics",
        str(run_dir / "evaluate" / "metrics"),
        "--registration-out",
        str(out / "registration.json"),
        "--model-card-out",
        str(out / "model_card.md"),
        "--settings",
        json.dumps({"model_name": model_name, "experiment": "fraud-drills"}),
        "--pipeline",
        "fraud",
    ]


# --- Redis wiped --------------------------------------------------------------------------------


def test_wiped_redis_is_rebuilt_from_the_offline_store(
    stack: Stack, platform_run: dict[str, Any], tmp_path: Path
) -> None:
    train = pd.read_parquet(platform_run["run_dir"] / "materialize" / "train_set")
    users = [int(user) for user in train["user_id"].drop_duplicates().sample(20, random_state=3)]
    before = online_values(platform_run, users)
    assert all(value is not None for value in before["amount_avg_7d"])

    # The fraud project's keys are lost (Feast's Redis keys end with the project's name); the rest
    # of the shared Redis, which other tests use, is left alone, so no test depends on the order.
    client = redis.Redis(port=stack.ports.redis)
    fraud_keys = [key for key in client.scan_iter(count=5000) if key.endswith(b"fraud")]
    assert fraud_keys, "positive control: the run wrote fraud's keys"
    client.delete(*fraud_keys)
    lost = online_values(platform_run, users)
    assert all(value is None for value in lost["amount_avg_7d"]), "deleting fraud's keys should have emptied its store"

    # From a fresh process with an empty MLOPS_HOME: the offline store and the registry are the platform's.
    empty_home = tmp_path / "empty-home"
    rebuilt = mlops(platform_env(stack, empty_home), "materialize", "fraud", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt user_transaction_stats" in rebuilt.stdout
    assert "from s3://feast-offline/fraud/" in rebuilt.stdout
    assert online_values(platform_run, users) == before


# --- MLflow down --------------------------------------------------------------------------------


def test_tracking_server_down_leaves_serving_intact_and_registration_is_retried_until_it_is_back(
    stack: Stack, platform_run: dict[str, Any], tmp_path: Path
) -> None:
    """The tracking server is down when register starts: serving is untouched, the step fails in
    seconds as transient (exit 75, never 2), its retry class retries it, and once the server is
    back the retry registers the model, exactly once."""
    import xgboost as xgb
    from mlflow import MlflowClient

    registration = platform_run["registration"]
    service_yaml = (platform_run["run_dir"] / "promote" / "inference_service").read_text()
    storage_uri = next(line.split()[-1] for line in service_yaml.splitlines() if "storageUri:" in line)
    bucket, _, prefix = storage_uri.removeprefix("s3://").partition("/")
    holdout = pd.read_parquet(platform_run["run_dir"] / "materialize" / "holdout_set")
    rows = xgb.DMatrix(holdout[registration["features"]].astype("float32")[:500])
    trained = xgb.Booster()
    trained.load_model(bytearray((platform_run["run_dir"] / "train" / "model").read_bytes()))
    model_name = "fraud-detector-retried"

    stack.down(("mlflow",))
    try:
        # The serving side (KServe's storage initializer, then Triton) reads only S3.
        key = f"{prefix}/{registration['model_name']}/1/xgboost.json"
        body = stack.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == registration["artifact_sha256"]
        served = xgb.Booster()
        served.load_model(bytearray(body))
        assert (served.predict(rows) == trained.predict(rows)).all()

        # One attempt, as Argo runs it: transient, in seconds, nothing written.
        started = time.monotonic()
        result = mlops(platform_run["env"], *register_args(platform_run, tmp_path / "once", model_name))
        seconds = time.monotonic() - started
        print(f"\nregister with the tracking server down failed in {seconds:.1f} s")
        assert result.returncode == 75, result.stdout + result.stderr
        assert f"MLflow tracking server at {stack.tracking_uri}" in result.stderr
        assert "failure: transient (exit 75" in result.stderr and "MLFLOW_TRACKING_URI" in result.stderr
        assert not (tmp_path / "once" / "registration.json").exists()

        # The step's retry class (idempotent-write, short waits here) rides the outage out: the
        # server comes back after the first failed attempt, during the backoff.
        policy = {**json.loads(IDEMPOTENT_WRITE.to_json()), "backoff_seconds": 5, "max_backoff_seconds": 20}
        retried = subprocess.Popen(
            [sys.executable, "-m", "mlops.cli", *register_args(platform_run, tmp_path / "retried", model_name)],
            cwd=REPO,
            env={**platform_run["env"], "MLOPS_STEP_RETRY": json.dumps(policy)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert retried.stderr is not None
        before_retry = [retried.stderr.readline() for _ in range(1)]
        while not before_retry[-1].startswith("RETRY ") and before_retry[-1] and len(before_retry) < 200:
            before_retry.append(retried.stderr.readline())
        assert before_retry[-1].startswith("RETRY 1/4"), "".join(before_retry)
        assert "MLflow tracking server" in before_retry[-1]
    finally:
        stack.up(("mlflow",))
    out, err = retried.communicate(timeout=300)
    assert retried.returncode == 0, "".join(before_retry) + err
    assert json.loads(out.strip().splitlines()[-1])["version"] == 1
    versions = MlflowClient(tracking_uri=stack.tracking_uri).search_model_versions(f"name='{model_name}'")
    assert len(versions) == 1


# --- S3 misconfigured -------------------------------------------------------------------------------


class _Failing(QuietHandler):
    """An S3 endpoint in trouble: every request answers 500 InternalError."""

    def _fail(self) -> None:
        body = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
        self.send_response(500)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _fail


@pytest.fixture()
def failing_s3() -> Iterator[str]:
    with serving(_Failing) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("case", "names", "kind"),
    [
        ("no-endpoint", ["MLFLOW_S3_ENDPOINT_URL is not set"], "permanent"),
        ("wrong-keys", ["rejected the credentials", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "permanent"),
        ("s3-500", ["answered 500", "MLFLOW_S3_ENDPOINT_URL"], "transient"),
    ],
)
def test_s3_misconfiguration_fails_in_seconds_naming_what_to_set(
    platform_run: dict[str, Any], tmp_path: Path, failing_s3: str, case: str, names: list[str], kind: str
) -> None:
    overrides = {
        # boto3 reads AWS_ENDPOINT_URL too (and s3fs FSSPEC_S3_ENDPOINT_URL): a missing endpoint lacks all three
        "no-endpoint": {"MLFLOW_S3_ENDPOINT_URL": "", "AWS_ENDPOINT_URL": "", "FSSPEC_S3_ENDPOINT_URL": ""},
        "wrong-keys": {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "s3-500": {"MLFLOW_S3_ENDPOINT_URL": failing_s3, "AWS_ENDPOINT_URL": failing_s3},
    }[case]
    env = {**platform_run["env"], **overrides}
    env = {key: value for key, value in env.items() if value}
    run_dir = platform_run["run_dir"]
    args = {
        "model": str(run_dir / "train" / "model"),
        "model_metadata": str(run_dir / "train" / "metadata"),
        "metrics": str(run_dir / "evaluate" / "metrics"),
        "registration_out": str(tmp_path / "registration.json"),
        "model_card_out": str(tmp_path / "model_card.md"),
        "settings": {"model_name": f"drill-{case}", "experiment": f"fraud-drill-{case}"},
        "pipeline": "fraud",
    }
    # the register step, timed from after its imports (tests/integration/timed_register.py)
    result = python_module("tests.integration.timed_register", json.dumps(args), env=env)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n{case}: register failed after {outcome['seconds']:.2f} s: {outcome['error']}")
    assert outcome["error"] is not None, "the misconfigured client registered anyway"
    for name in names:
        assert name in outcome["error"]
    assert outcome["kind"] == kind, "bad config is permanent (never retried); a failing store is transient"
    assert outcome["seconds"] < 5, f"{case} took {outcome['seconds']:.1f} s to fail"
    assert not (tmp_path / "registration.json").exists()


# --- eight racing registrations --------------------------------------------------------------------


WRITERS = 8
"""Racing writers: enough that, with register's convergence removed (components/steps/register.py,
step 3), they make several versions (8 writers made 8 versions); 16 took 75 s here to 8's 42 s."""


def test_eight_processes_registering_one_artifact_make_one_version(
    stack: Stack, platform_run: dict[str, Any], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    name = "fraud-race"
    for index in range(WRITERS):
        (tmp_path / f"writer-{index}").mkdir()
    # Eight processes at once, each `mlops step register` (children of the warm worker, as the suite's
    # other `mlops` calls: they start within milliseconds of each other, not an import time apart).
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        done = list(
            pool.map(
                lambda index: mlops(
                    platform_run["env"], *register_args(platform_run, tmp_path / f"writer-{index}", name)
                ),
                range(WRITERS),
            )
        )
    failed = {i: child.stderr[-2000:] for i, child in enumerate(done) if child.returncode}
    assert failed == {}, failed  # each failed writer's own error, not the first lines of all of them

    registered = {
        json.loads((tmp_path / f"writer-{index}" / "registration.json").read_text())["version"]
        for index in range(WRITERS)
    }
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 1, [v.version for v in versions]
    assert registered == {int(versions[0].version)}
    assert client.get_model_version_by_alias(name, "challenger").version == versions[0].version


# --- connection exhaustion, with and without PgBouncer --------------------------------------------


def _parallel_writers(port: int, writers: int, password: str) -> tuple[int, list[str]]:
    """`writers` threads, each holding a connection through one transaction of 0.5 s."""
    errors: list[str] = []
    done = []
    barrier = threading.Barrier(writers)

    def write(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                dbname="feast",
                user=DB_USER,
                password=password,
                connect_timeout=30,
                prepare_threshold=None,
            ) as connection:
                with connection.transaction():
                    connection.execute("insert into writes (writer) values (%s)", (index,))
                    connection.execute("select pg_sleep(0.5)")
                done.append(index)
        except psycopg.OperationalError as error:
            errors.append(str(error).strip())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return len(done), errors


def test_more_writers_than_connections_fail_without_pgbouncer(small_postgres: Stack) -> None:
    succeeded, errors = _parallel_writers(small_postgres.ports.postgres, 30, small_postgres.db_password)
    assert errors, "30 direct writers against max_connections=10 should have been refused"
    assert all("too many clients" in e or "remaining connection slots" in e for e in errors), errors[:3]
    assert succeeded + len(errors) == 30


def test_pgbouncer_queues_the_same_writers_and_all_succeed(small_postgres: Stack) -> None:
    succeeded, errors = _parallel_writers(small_postgres.ports.pgbouncer, 30, small_postgres.db_password)
    assert errors == []
    assert succeeded == 30


# --- killed mid-upload -------------------------------------------------------------------------------

SLOW_UPLOAD = """
import os, sys
from components import artifacts
print("uploading", flush=True)
artifacts.write_bytes(sys.argv[1], os.urandom(96 << 20))
print("uploaded", flush=True)
"""


def test_writer_killed_mid_upload_leaves_the_previous_object(stack: Stack, platform_run: dict[str, Any]) -> None:
    client = stack.s3_client()
    key = "drills/model.bin"
    client.put_object(Bucket="pipeline-artifacts", Key=key, Body=b"previous model")
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_UPLOAD, f"s3://pipeline-artifacts/{key}"],
        cwd=REPO,
        env=platform_env(stack, platform_run["home"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "uploading"
    deadline = time.monotonic() + 60
    while not client.list_multipart_uploads(Bucket="pipeline-artifacts").get("Uploads"):
        assert time.monotonic() < deadline and writer.poll() is None, "the upload never started"
        time.sleep(0.02)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert client.get_object(Bucket="pipeline-artifacts", Key=key)["Body"].read() == b"previous model"
    uploads = client.list_multipart_uploads(Bucket="pipeline-artifacts", Prefix=key).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [key], "the kill left an incomplete upload behind"

    # The retry (the next writer of the key) aborts the dead attempt's upload and writes whole.
    code = "import sys; from components import artifacts; artifacts.write_bytes(sys.argv[1], b'new')"
    rewrite = subprocess.run(
        [sys.executable, "-c", code, f"s3://pipeline-artifacts/{key}"],
        cwd=REPO,
        env=platform_env(stack, platform_run["home"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rewrite.returncode == 0, rewrite.stderr
    assert client.get_object(Bucket="pipeline-artifacts", Key=key)["Body"].read() == b"new"
    assert client.list_multipart_uploads(Bucket="pipeline-artifacts", Prefix=key).get("Uploads", []) == []
    # What nobody writes again, the bucket's lifecycle aborts (SeaweedFS stores the rule; its
    # one-day clock cannot be waited out in a test).
    from components.platform.buckets import BUCKETS, has_lifecycle

    assert all(has_lifecycle(client, bucket) for bucket in BUCKETS)
    ensured = mlops(platform_env(stack, platform_run["home"]), "buckets", "ensure")  # the cluster Job's command
    assert ensured.returncode == 0 and json.loads(ensured.stdout)["buckets"] == list(BUCKETS), ensured.stderr
