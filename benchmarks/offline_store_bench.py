"""make bench (offline store): where a run's validated data lives so that it outlives the pod.

Three of Feast's offline stores on the same data and the same feature definitions (the fraud
pipeline's entity, view and service), on real services it starts itself (or, with `--stack`, a
running stack's: benchmarks/bench_stack.py):
1. Parquet in S3 (Feast's file store, reading S3 through pyarrow: components/platform/s3_filesystem.py),
   what the platform uses: one upload, then the point-in-time join;
2. Feast's PostgreSQL offline store: the rows COPYed into a table, then the join in SQL;
3. Feast's DuckDB store on local Parquet, what a laptop run uses;
and the floor: the same join as one DuckDB ASOF JOIN with the view's TTL, outside Feast.
Each prints the time to store the run's data and the time of the training set's point-in-time
join (the materialize step's), and the training sets must be equal row for row.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stack import add_stack_argument, bench_stack  # noqa: E402

from devstack.stack import DB_USER, Stack  # noqa: E402

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.data_source import DataSource

COLUMNS = ["user_id", "event_timestamp", "txn_count_1h", "txn_count_24h", "amount_avg_7d", "seconds_since_last_txn"]


def definitions(source: DataSource) -> list[Any]:
    """The fraud pipeline's definitions (pipelines/fraud/feature_repo) over another source."""
    from feast import FeatureService, FeatureView, Field

    from pipelines.fraud.feature_repo import fraud_features as fraud

    view = FeatureView(
        name=fraud.user_transaction_stats.name,
        entities=[fraud.user],
        ttl=fraud.user_transaction_stats.ttl,
        schema=[Field(name=name, dtype=dtype) for name, dtype in fraud.USER_TRANSACTION_FEATURES.items()],
        source=source,
        online=False,
    )
    return [fraud.user, source, view, FeatureService(name=fraud.fraud_model_v1.name, features=[view])]


def training_set(store: FeatureStore, frame: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    from components.steps.materialize import historical_features

    entity_df = frame[["user_id", "event_timestamp", "is_fraud"]].sort_values("event_timestamp", kind="stable")
    started = time.perf_counter()
    joined = historical_features(store, entity_df, "fraud_model_v1")
    seconds = time.perf_counter() - started
    ordered = joined.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)
    return ordered[[*COLUMNS, "is_fraud"]], seconds


def parquet_in_s3(stack: Stack, frame: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, float, float]:
    from feast import FileSource

    from components import artifacts
    from components.environment import temporary_env
    from components.platform.settings import environment
    from components.steps.materialize import open_store

    with temporary_env({**environment(stack.settings()), **stack.credentials()}):
        started = time.perf_counter()
        uri = "s3://feast-offline/bench/run-1/events.parquet"
        artifacts.write_parquet(uri, frame)
        stored = time.perf_counter() - started
        store = open_store("bench_file", folder / "file", {
            "project": "bench_file", "provider": "local", "registry": str(folder / "file" / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(folder / "file" / "online.db")},
            "offline_store": {"type": "file"}, "entity_key_serialization_version": 3,
        })  # fmt: skip
        source = FileSource(name="transactions", path=uri, timestamp_field="event_timestamp",
                            s3_endpoint_override=stack.s3_endpoint)  # fmt: skip
        store.apply(definitions(source))
        joined, seconds = training_set(store, frame)
    return joined, stored, seconds


def postgres_table(stack: Stack, frame: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, float, float]:
    import psycopg
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

    from components.steps.materialize import open_store

    table = "bench_events"
    started = time.perf_counter()
    with psycopg.connect(host="127.0.0.1", port=stack.ports.postgres, dbname="offline", user=DB_USER,
                         password=stack.db_password, autocommit=True) as connection:  # fmt: skip
        connection.execute(f"drop table if exists {table}")
        connection.execute(
            f"create table {table} (user_id bigint, event_timestamp timestamptz, txn_count_1h bigint,"
            " txn_count_24h bigint, amount_avg_7d double precision, seconds_since_last_txn double precision)"
        )
        with connection.cursor().copy(f"copy {table} ({', '.join(COLUMNS)}) from stdin") as copy:
            for row in frame[COLUMNS].itertuples(index=False):
                copy.write_row(row)
        connection.execute(f"create index on {table} (user_id, event_timestamp)")
        connection.execute(f"analyze {table}")
    stored = time.perf_counter() - started
    postgres = {"host": "127.0.0.1", "port": stack.ports.postgres, "database": "offline", "db_schema": "public",
                "user": DB_USER, "password": stack.db_password, "sslmode": "disable"}  # fmt: skip
    store = open_store("bench_pg", folder / "pg", {
        "project": "bench_pg", "provider": "local", "registry": str(folder / "pg" / "registry.db"),
        "online_store": {"type": "sqlite", "path": str(folder / "pg" / "online.db")},
        "offline_store": {"type": "postgres", **postgres}, "entity_key_serialization_version": 3,
    })  # fmt: skip
    store.apply(definitions(PostgreSQLSource(name="transactions", table=table, timestamp_field="event_timestamp")))
    joined, seconds = training_set(store, frame)
    return joined, stored, seconds


def duckdb_local(frame: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, float, float]:
    from feast import FileSource

    from components import artifacts
    from components.steps.materialize import embedded_store_config, open_store

    started = time.perf_counter()
    path = folder / "duckdb" / "events.parquet"
    artifacts.write_parquet(str(path), frame)
    stored = time.perf_counter() - started
    config = {**embedded_store_config(folder / "duckdb", "bench_duckdb"), "offline_store": {"type": "duckdb"}}
    store = open_store("bench_duckdb", folder / "duckdb", config)
    store.apply(definitions(FileSource(name="transactions", path=str(path), timestamp_field="event_timestamp")))
    joined, seconds = training_set(store, frame)
    return joined, stored, seconds


def duckdb_asof_floor(folder: Path) -> tuple[pd.DataFrame, float]:
    """The same point-in-time join without Feast: one ASOF JOIN, nulls past the 30-day TTL."""
    import duckdb

    path = folder / "duckdb" / "events.parquet"
    features = ", ".join(f"case when f.event_timestamp >= e.event_timestamp - interval 30 days then f.{c} end as {c}"
                         for c in COLUMNS[2:])  # fmt: skip
    query = (
        f"select e.user_id, e.event_timestamp, {features}, e.is_fraud"
        f" from (select user_id, event_timestamp, is_fraud from '{path}') e"
        f" asof left join (select {', '.join(COLUMNS)} from '{path}') f"
        " on e.user_id = f.user_id and e.event_timestamp >= f.event_timestamp"
    )
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    started = time.perf_counter()
    joined = connection.sql(query).df()
    seconds = time.perf_counter() - started
    stamps = joined["event_timestamp"]
    joined["event_timestamp"] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    ordered = joined.sort_values(["event_timestamp", "user_id"], kind="stable").reset_index(drop=True)
    return ordered[[*COLUMNS, "is_fraud"]], seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    add_stack_argument(parser)
    args = parser.parse_args(argv)

    from pipelines.fraud.data import generate

    frame = generate(args.rows, 7)
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-offline-"))
    try:
        with bench_stack(args, ("postgres", "pgbouncer", "s3"), "mlops-bench-offline-services-") as stack:
            file_set, file_store, file_join = parquet_in_s3(stack, frame, root)
            pg_set, pg_store, pg_join = postgres_table(stack, frame, root)
        duck_set, duck_store, duck_join = duckdb_local(frame, root)
        floor_set, floor_join = duckdb_asof_floor(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for other in (pg_set, duck_set, floor_set):
        pd.testing.assert_frame_equal(file_set, other, check_dtype=False, check_exact=False, rtol=1e-9)
    print(f"offline store for one run, {args.rows:,} rows: store the data, then the training set's point-in-time join")
    print(f"  {'store':<34} {'write':>8} {'join':>8} {'total':>8}")
    file_total, pg_total = file_store + file_join, pg_store + pg_join
    print(f"  {'Parquet in S3 (file store)':<34} {file_store:7.2f}s {file_join:7.2f}s {file_total:7.2f}s  (baseline)")
    print(f"  {'PostgreSQL offline store':<34} {pg_store:7.2f}s {pg_join:7.2f}s {pg_total:7.2f}s  "
          f"{pg_total / file_total:5.2f}x")  # fmt: skip
    duck_total = duck_store + duck_join
    print(f"  {'DuckDB store, local Parquet':<34} {duck_store:7.2f}s {duck_join:7.2f}s {duck_total:7.2f}s  "
          f"{duck_total / file_total:5.2f}x")  # fmt: skip
    floor_ratio = floor_join / file_join
    print(f"  {'floor: one DuckDB ASOF JOIN':<34} {'':>8} {floor_join:7.2f}s {'':>8}  join {floor_ratio:5.2f}x")
    print("  the training sets are equal row for row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
