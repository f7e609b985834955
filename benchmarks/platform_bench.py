"""make bench (platform part): the feature store and the registry on real services, each beside a baseline.

Starts its own PostgreSQL, PgBouncer, Redis, S3 and MLflow on free ports (or, with `--stack`, uses
a running stack's: benchmarks/bench_stack.py), then measures, in one run on the same servers and data:
1. materialize 1M rows / 100k entities into Redis: Feast's stock settings vs the platform's
   (components.platform.services.feast_store_config), rows of offline data per second; both must leave
   identical values online;
2. online lookup p50/p99 for 1 and 100 entities: the scoring path (components.serving.online_reader) vs a
   raw redis-py HMGET pipeline of the same keys and fields, with the Feast SDK for reference;
   the three are interleaved call by call so that noise hits them alike;
3. registration: a new registration vs an idempotent re-registration of the same artifact;
   1,000 metrics (--metrics) with one `log_batch` vs one `log_metric` call each.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stack import add_stack_argument, bench_stack  # noqa: E402

from components import artifacts  # noqa: E402
from devstack.stack import SERVICES, Stack  # noqa: E402

if TYPE_CHECKING:
    import redis
    from feast import FeatureService, FeatureStore

    from components.serving.online_reader import OnlineFeatureReader

FEATURE_REPO = REPO / "pipelines" / "fraud" / "feature_repo"
VIEW = "user_transaction_stats"
SERVICE = "fraud_model_v1"


def feature_table(rows: int, entities: int, seed: int = 5) -> pd.DataFrame:
    """`rows` events over 30 days for `entities` users, in the fraud feature view's schema."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, entities, rows, dtype=np.int64),
            # microsecond times: no two events of one user share an instant (a tie has no defined winner)
            "event_timestamp": pd.to_datetime(start)
            + pd.to_timedelta(rng.integers(0, 30 * 86400 * 10**6, rows), unit="us"),
            "txn_count_1h": rng.integers(0, 10, rows, dtype=np.int64),
            "txn_count_24h": rng.integers(0, 60, rows, dtype=np.int64),
            "amount_avg_7d": rng.gamma(2.0, 40.0, rows),
            "seconds_since_last_txn": rng.exponential(3600.0, rows),
        }
    )


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:5.2f}x" if baseline else "  n/a"


def materialize_bench(home: Path, source: Path, frame: pd.DataFrame) -> None:
    from components.platform import online_writer, services
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import apply_repo, open_store

    start = frame["event_timestamp"].min().to_pydatetime()
    end = frame["event_timestamp"].max().to_pydatetime() + timedelta(seconds=1)
    timings: dict[str, float] = {}
    readers: dict[str, OnlineFeatureReader] = {}
    for label in ("stock", "pull_latest", "platform"):
        project = f"bench_{label}"
        directory = home / "feast" / project
        config = services.feast_store_config(project)
        assert config is not None
        if label == "stock":
            config.pop("materialization_config", None)
        store = open_store(project, directory, config)
        apply_repo(store, FEATURE_REPO, str(source))
        view = store.get_feature_view(VIEW)
        started = time.perf_counter()
        if label == "platform":
            online_writer.materialize_view(store, view, start, end)
        else:
            store.materialize(start_date=start, end_date=end, feature_views=[VIEW])
        timings[label] = time.perf_counter() - started
        readers[label] = OnlineFeatureReader(store, SERVICE)
    entities = frame["user_id"].drop_duplicates()
    sample = [{"user_id": int(user)} for user in entities.sample(min(5000, len(entities)), random_state=1)]
    expected = readers["stock"].get(sample)
    identical = all(readers[label].get(sample) == expected for label in ("pull_latest", "platform"))
    rows = len(frame)
    rate = {label: rows / seconds for label, seconds in timings.items()}
    print(f"materialize {rows:,} rows / {frame['user_id'].nunique():,} entities into Redis (rows of offline data/s)")
    print(f"  Feast, stock settings           {timings['stock']:7.2f} s  {rate['stock']:>10,.0f} rows/s  (baseline)")
    print(
        f"  Feast, pull_latest_features     {timings['pull_latest']:7.2f} s  {rate['pull_latest']:>10,.0f} rows/s"
        f"  {ratio(rate['pull_latest'], rate['stock'])}"
    )
    print(
        f"  platform (columnar, pipelined)  {timings['platform']:7.2f} s  {rate['platform']:>10,.0f} rows/s"
        f"  {ratio(rate['platform'], rate['stock'])}"
    )
    print(f"  same values online for 5,000 sampled entities in all three: {identical}")
    if not identical:
        raise SystemExit("the materializations disagree on what is online")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def lookup_bench(home: Path, frame: pd.DataFrame, stack: Stack, iterations: int) -> None:
    import redis

    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import open_store

    store = open_store("bench_platform", home / "feast" / "bench_platform")  # written by the platform writer
    reader = OnlineFeatureReader(store, SERVICE)
    service = store.get_feature_service(SERVICE)
    raw = redis.Redis(host="127.0.0.1", port=stack.ports.redis)
    entities = frame["user_id"].drop_duplicates()
    users = entities.sample(min(5000, len(entities)), random_state=2).tolist()
    print(f"online lookup through the scoring path vs raw HMGET of the same keys ({iterations} calls each)")
    for count in (1, 100):
        batches = [[{"user_id": int(u)} for u in users[i : i + count]] for i in range(0, count * 50, count)]
        samples = _interleaved(reader, store, service, raw, batches, iterations // (10 if count == 100 else 1))
        base50, base99 = percentiles(samples["raw HMGET"])
        for name, measured in samples.items():
            p50, p99 = percentiles(measured)
            suffix = "  (baseline)" if name == "raw HMGET" else f"  {ratio(p50, base50)} p50, {ratio(p99, base99)} p99"
            print(f"  {count:>3} entities  {name:<13} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms{suffix}")


def _interleaved(
    reader: OnlineFeatureReader,
    store: FeatureStore,
    service: FeatureService,
    raw: redis.Redis,
    batches: list[list[dict[str, int]]],
    calls_each: int,
) -> dict[str, list[float]]:
    """Call raw HMGET, the scoring path and the SDK in turn on the same batch, timing each."""
    commands = [reader.redis_commands(batch) for batch in batches]

    def raw_call(index: int) -> None:
        with raw.pipeline(transaction=False) as pipe:
            for key, fields in commands[index]:
                pipe.hmget(key, fields)  # type: ignore[arg-type]  # redis-py takes bytes keys too
            pipe.execute()

    calls: dict[str, Callable[[int], Any]] = {
        "raw HMGET": raw_call,
        "scoring path": lambda index: reader.get(batches[index]),
        "Feast SDK": lambda index: store.get_online_features(features=service, entity_rows=batches[index]).to_dict(),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for iteration in range(calls_each):
        for name, call in calls.items():
            started = time.perf_counter()
            call(iteration % len(batches))
            samples[name].append(time.perf_counter() - started)
    return samples


def registry_bench(home: Path, stack: Stack, metrics_count: int = 1000) -> None:
    import json
    import subprocess

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from components.config import RegisterSettings
    from components.steps.register import register

    model_dir = home / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    # A real trained model and its metadata, from the train and evaluate components on small data.
    script = (
        "import sys; from pathlib import Path; from pipelines.fraud.data import generate;"
        "from components.steps.train import train; from components.steps.evaluate import evaluate;"
        "from components.config import EvaluateSettings, TrainSettings;"
        "out = Path(sys.argv[1]); frame = generate(6000, 3);"
        "frame.iloc[:4800].to_parquet(out / 'train.parquet');"
        "frame.iloc[4800:].to_parquet(out / 'hold.parquet');"
        "features = ['amount', 'merchant_category', 'txn_count_1h', 'txn_count_24h', 'amount_avg_7d',"
        " 'seconds_since_last_txn'];"
        "train(str(out / 'train.parquet'), str(out / 'model'), str(out / 'metadata'), features=features,"
        " label_column='is_fraud', settings=TrainSettings(seed=1, device='cpu'));"
        "evaluate(str(out / 'model'), str(out / 'metadata'), str(out / 'hold.parquet'), str(out / 'metrics'),"
        " str(out / 'q.png'), str(out / 'e.png'), settings=EvaluateSettings(threshold=0.0))"
    )
    subprocess.run([sys.executable, "-c", script, str(model_dir)], cwd=REPO, check=True, capture_output=True)

    # a name of this run's own: on a running stack (--stack) an earlier run's version would make the
    # first registration a re-registration
    model_name = f"bench-model-{secrets.token_hex(4)}"

    def call() -> dict[str, Any]:
        return register(
            str(model_dir / "model"),
            str(model_dir / "metadata"),
            str(model_dir / "metrics"),
            str(model_dir / "registration.json"),
            str(model_dir / "card.md"),
            settings=RegisterSettings(model_name=model_name, experiment="bench"),
            tracking_uri=stack.tracking_uri,
            pipeline="bench",
        )

    started = time.perf_counter()
    first = call()
    new = time.perf_counter() - started
    reuse_times = []
    for _ in range(5):
        started = time.perf_counter()
        again = call()
        reuse_times.append(time.perf_counter() - started)
    assert again["version"] == first["version"] and again["reused"], json.dumps(again)
    reuse = sorted(reuse_times)[2]
    print("registry on the PostgreSQL-backed tracking server (through PgBouncer), artifacts in S3")
    print(f"  new registration (run, model bytes to S3, version)   {new:6.2f} s  (baseline)")
    print(f"  idempotent re-registration of the same artifact      {reuse:6.2f} s  {ratio(reuse, new)}")

    client = MlflowClient(tracking_uri=stack.tracking_uri)
    experiment = client.create_experiment(f"bench-metrics-{int(time.time())}")
    run = client.create_run(experiment)
    stamp = int(time.time() * 1000)
    started = time.perf_counter()
    for step in range(metrics_count):
        client.log_metric(run.info.run_id, "loss_single", 1.0 / (step + 1), timestamp=stamp, step=step)
    single = time.perf_counter() - started
    metrics = [Metric("loss_batch", 1.0 / (step + 1), stamp, step) for step in range(metrics_count)]
    started = time.perf_counter()
    client.log_batch(run.info.run_id, metrics=metrics)
    batch = time.perf_counter() - started
    logged = len(client.get_metric_history(run.info.run_id, "loss_batch"))
    count = f"{metrics_count:,}"
    print(f"  {count} metrics, one log_metric call each              {single:6.2f} s  (baseline)")
    print(f"  {count} metrics, one log_batch call ({logged} stored)      {batch:6.2f} s  {ratio(batch, single)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=1000, help="metrics logged per way (the smoke test logs few)")
    add_stack_argument(parser)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mlops-bench-home-"))
    try:
        with bench_stack(args, SERVICES, "mlops-bench-services-", echo=True) as stack:
            os.environ.update(stack.environment())
            os.environ["MLOPS_HOME"] = str(home)
            frame = feature_table(args.rows, args.entities)
            source = home / "offline" / "features.parquet"
            artifacts.write_parquet(source, frame)
            materialize_bench(home, source, frame)
            lookup_bench(home, frame, stack, args.iterations)
            registry_bench(home, stack, args.metrics)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
