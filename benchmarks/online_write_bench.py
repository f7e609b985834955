"""The laptop's online write as the online table grows: why materialize's time per row at 100M rows
is 1.64x that at 10M (docs/performance.md, "Memory against rows").

Materialize writes each entity's latest features into the SQLite online store (a laptop's; the
cluster's is Redis) BATCH_ROWS entities at a time, with Feast's own upsert (components/platform/
online_writer.py SQLITE_UPSERT) into Feast's own table: a primary key on (entity key, feature name)
and a second index on the entity key (feast/infra/online_stores/sqlite.py, 0.67). The keys are the
writer's own encoding (components/serving/online_reader.key_encoder) of shuffled user ids, as a join
hands them over. The fraud view has 6 features, so N entities are 6N rows; 100M transactions hold 10M
users, 10M rows 1M.

Printed: each batch's seconds, the first batch on the empty table (the baseline, measured in the
same run) beside the last, their ratio and rows per second, and the goal: the last batch within 1.2x
of the first (issue 33's time per row at 100M within 1.2x that at 10M), met or MISSED.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(REPO))

FEATURES = 6
GOAL_RATIO = 1.2
# Feast 0.67's SqliteOnlineStore table and index (its update(): the same DDL, the project's table name)
TABLE = "fraud_user_features"
DDL = (
    f"CREATE TABLE {TABLE} (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, vector_value BLOB,"
    " event_ts timestamp, created_ts timestamp, PRIMARY KEY(entity_key, feature_name))",
    f"CREATE INDEX {TABLE}_ek ON {TABLE} (entity_key)",
)


def _batches(entities: int, batch: int, seed: int) -> list[list[bytes]]:
    import numpy as np
    from feast.value_type import ValueType

    from components.serving.online_reader import key_encoder

    encode = key_encoder(["user_id"], {"user_id": ValueType.INT64}, 3)
    users = np.random.default_rng(seed).permutation(entities).tolist()
    return [[encode({"user_id": user}) for user in users[i : i + batch]] for i in range(0, entities, batch)]


def run(entities: int, batch: int, seed: int) -> list[float]:
    """Seconds of each batch's upsert (one transaction, as the writer commits), the table growing."""
    from components.platform.online_writer import SQLITE_UPSERT

    names = [f"feature_{index}" for index in range(FEATURES)]
    value, stamp = b"\x20\x01", "2026-12-01 00:00:00"  # an INT64 1, a naive UTC event time
    seconds = []
    with tempfile.TemporaryDirectory(prefix="mlops-online-") as tmp:
        connection = sqlite3.connect(str(Path(tmp) / "online.db"))
        for statement in DDL:
            connection.execute(statement)
        for keys in _batches(entities, batch, seed):
            started = time.perf_counter()
            with connection:
                rows = ((key, name, value, "1", stamp, None) for key in keys for name in names)
                connection.executemany(SQLITE_UPSERT.format(table=TABLE), rows)
            seconds.append(time.perf_counter() - started)
        connection.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    from components.platform.online_writer import BATCH_ROWS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entities", type=int, default=2_000_000, help="entities written (10M at 100M rows)")
    parser.add_argument("--batch", type=int, default=BATCH_ROWS, help="entities a batch (the writer's BATCH_ROWS)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    seconds = run(args.entities, args.batch, args.seed)
    rows = args.batch * FEATURES
    print(f"SQLite online write, {args.entities:,} entities x {FEATURES} features, {args.batch:,} entities a batch")
    print(f"{'batch':>6} {'table rows before':>18} {'seconds':>8} {'rows/s':>10}")
    for index, took in enumerate(seconds):
        if index in (0, len(seconds) - 1) or index % max(len(seconds) // 8, 1) == 0:
            print(f"{index:>6} {index * rows:>18,} {took:8.2f} {rows / took:10,.0f}")
    ratio = seconds[-1] / seconds[0]
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    print(f"total {sum(seconds):.1f} s; the last batch against the first (the baseline, empty table): {ratio:.2f}x")
    print(f"goal: the last batch within {GOAL_RATIO}x of the first: {ratio:.2f}x, {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
