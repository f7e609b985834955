"""The decision log's record (components/serving/decision_record.py): ids, keys, schema and its version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from components.serving import decision_record as dr


def record(**overrides: object) -> dr.DecisionRecord:
    fields: dict[str, object] = {
        "request_id": "req-1",
        "row": 2,
        "decided_at": datetime(2026, 12, 4, 23, 30, tzinfo=timezone(timedelta(hours=-2))),
        "namespace": "fraud",
        "model_name": "fraud-detector",
        "model_version": "3",
        "model_sha256": "a" * 64,
        "serving_role": "champion",
        "revision": "local",
        "entity_column": "user_id",
        "entity_id": "42",
        "request": {"user_id": 42, "amount": 310.5},
        "feature_names": ["amount", "txn_count_24h"],
        "feature_values": [310.5, 3.0],
        "unknown_entity": False,
        "score": 0.91,
        "threshold": 0.5,
        "decision": 1,
    }
    fields.update(overrides)
    return dr.DecisionRecord(**fields)  # type: ignore[arg-type]


def test_a_decision_id_is_the_request_id_and_row_and_splits_back() -> None:
    assert record().decision_id == "req-1/2"
    assert dr.split_decision_id("a/b/7") == ("a/b", 7)
    for bad in ("req-1", "req-1/", "/3", "req/x"):
        with pytest.raises(ValueError, match="not a decision id"):
            dr.split_decision_id(bad)


def test_the_day_partition_is_the_utc_day_and_keys_refuse_separators() -> None:
    assert record().day == "2026-12-05"  # 23:30 at UTC-2 is the next day in UTC
    key = dr.file_key("fraud", "fraud-detector", "3", "2026-12-05", part="p")
    assert key == "fraud/model=fraud-detector/version=3/date=2026-12-05/part-p.parquet"
    with pytest.raises(ValueError, match="partition"):
        dr.file_key("fraud", "a/b", "3", "2026-12-05")
    with pytest.raises(ValueError, match="prefix"):
        dr.file_key("fra/ud", "m", "3", "2026-12-05")


def test_a_record_refuses_an_unknown_role_a_naive_time_and_mismatched_features() -> None:
    with pytest.raises(ValueError, match="serving_role"):
        record(serving_role="shadow")
    with pytest.raises(ValueError, match="timezone"):
        record(decided_at=datetime(2026, 12, 4))
    with pytest.raises(ValueError, match="feature names"):
        record(feature_values=[1.0])


def test_written_files_read_back_partitioned_with_their_version(tmp_path: Path) -> None:
    rows = [record(row=i, score=float("nan") if i == 1 else 0.2 * i) for i in range(3)]
    key = dr.file_key("fraud", "fraud-detector", "3", rows[0].day)
    target = tmp_path / key
    target.parent.mkdir(parents=True)
    dr.write_file(dr.table_of(rows), str(target))
    assert dr.check_schema(pq.read_schema(target), str(target)) == dr.SCHEMA_VERSION
    table = ds.dataset(tmp_path / "fraud", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3
    assert set(table.column("date").to_pylist()) == {"2026-12-05"}
    by_id = {r["decision_id"]: r for r in table.to_pylist()}
    assert by_id["req-1/1"]["score"] is None  # NaN is stored as null, never as a number
    assert by_id["req-1/0"]["decided_at"] == datetime(2026, 12, 5, 1, 30, tzinfo=UTC)
    assert by_id["req-1/2"]["feature_values"] == [310.5, 3.0]


def test_a_newer_or_foreign_file_is_refused_by_version() -> None:
    newer = dr.SCHEMA.with_metadata({b"mlops.decision_schema": str(dr.SCHEMA_VERSION + 1).encode()})
    with pytest.raises(dr.UnknownSchemaVersion, match="upgrade private-mlops"):
        dr.check_schema(newer, "part.parquet")
    with pytest.raises(dr.UnknownSchemaVersion, match="not a decision log"):
        dr.check_schema(pa.schema([("x", pa.int64())]), "other.parquet")
