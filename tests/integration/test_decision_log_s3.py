"""The decision log's sink against the devstack's real S3 (SeaweedFS on loopback, the session's shared
`stack`): one flush lands as one Parquet object under decisions/<namespace>/model=/version=/date=/, read
back with the reader's hive partitioning; with SeaweedFS stopped the batch spills to disk, and once it
answers again the file is re-sent, then removed from the spill folder."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from components.environment import temporary_env
from components.serving import decision_record
from components.serving.decision_log import DecisionLog, Identity, Offer, open_destination
from devstack.stack import Stack

pytestmark = pytest.mark.integration

PROBE = "decision-log-probe"  # a folder of its own: other tests of the session log under fraud/
IDENTITY = Identity("fraud", "fraud-detector", "e" * 64, "canary", "fraud-detector-predictor-00002", "user_id", 0.5)


def _offer(request_id: str, rows: int) -> Offer:
    sent = [{"user_id": i, "amount": 1.5 * i} for i in range(rows)]
    scores = np.full(rows, 0.75, dtype=np.float32)
    return Offer(request_id, datetime(2026, 12, 5, 9, 0, tzinfo=UTC), "7", sent, ["amount", "avg"],
                 np.ones((rows, 2), dtype=np.float32), [False] * rows, scores)  # fmt: skip


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("mlops_decision_log_records_total", {"outcome": outcome}) or 0.0


def test_a_flush_lands_in_the_tenants_partition_and_a_stopped_store_spills_then_resends(
    stack: Stack, tmp_path: Path
) -> None:
    from components.platform import buckets

    client = stack.s3_client()
    buckets.ensure(client, (decision_record.BUCKET,))
    with temporary_env(stack.environment()):
        filesystem, root = open_destination(f"s3://{decision_record.BUCKET}/{PROBE}/")
        sink = DecisionLog(IDENTITY, filesystem, root, spill_dir=tmp_path / "spill", flush_seconds=60)
        sink.offer(_offer("s3-req", 3))
        sink.close()
    keys = _keys(client, decision_record.BUCKET, f"{PROBE}/")
    assert len(keys) == 1 and keys[0].startswith(f"{PROBE}/model=fraud-detector/version=7/date=2026-12-05/part-"), keys
    body = client.get_object(Bucket=decision_record.BUCKET, Key=keys[0])["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    decision_record.check_schema(table.schema, keys[0])
    assert table.column("decision_id").to_pylist() == ["s3-req/0", "s3-req/1", "s3-req/2"]
    assert set(table.column("serving_role").to_pylist()) == {"canary"}
    assert set(table.column("decision").to_pylist()) == {1}

    spilled, written = _counted("spilled"), _counted("written")
    with temporary_env(stack.environment()):
        filesystem, root = open_destination(f"s3://{decision_record.BUCKET}/fraud-down/")
        sink = DecisionLog(IDENTITY, filesystem, root, spill_dir=tmp_path / "spill2", flush_seconds=0.3)
        stack.down(("s3",))  # the object store stops answering
        try:
            sink.offer(_offer("down", 2))
            deadline = time.monotonic() + 60
            while _counted("spilled") - spilled < 2:
                assert time.monotonic() < deadline, "the batch was never spilled"
                time.sleep(0.1)
            assert list((tmp_path / "spill2").rglob("*.parquet")), "nothing on disk"
            assert _counted("written") == written
        finally:
            stack.up(("s3",))  # it answers again (the session's stack, as the other tests left it)
        try:
            while list((tmp_path / "spill2").rglob("*.parquet")):
                assert time.monotonic() < deadline + 60, "the spilled file was never re-sent"
                time.sleep(0.1)
        finally:
            sink.close()
    assert _counted("written") - written == 2
    (key,) = _keys(stack.s3_client(), decision_record.BUCKET, "fraud-down/")
    assert key.startswith("fraud-down/model=fraud-detector/version=7/date=2026-12-05/part-")
