"""The decision log's sink (components/serving/decision_log.py) on a local folder and on a destination
that fails: batches by count and by time, one file per (model, version, day), spill and re-send, drop
past the bound, an offer that never blocks, close() flushing what is queued, and the metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest
from prometheus_client import REGISTRY
from pyarrow import fs

from components.serving import decision_record
from components.serving.decision_log import DecisionLog, Identity, Offer, open_destination, records_of

FEATURES = ["amount", "merchant_category", "amount_avg_7d"]
IDENTITY = Identity(
    namespace="fraud",
    model_name="fraud-detector",
    model_sha256="b" * 64,
    serving_role="champion",
    revision="local",
    entity_column="user_id",
    threshold=0.5,
)


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("mlops_decision_log_records_total", {"outcome": outcome}) or 0.0


def spill_bytes() -> float:
    return REGISTRY.get_sample_value("mlops_decision_log_spill_bytes") or 0.0


def offer(request_id: str = "req", rows: int = 2, version: str = "3", scores: Any = None) -> Offer:
    matrix = np.arange(rows * len(FEATURES), dtype=np.float32).reshape(rows, len(FEATURES))
    return Offer(
        request_id=request_id,
        decided_at=datetime(2026, 12, 5, 8, 0, tzinfo=UTC),
        model_version=version,
        rows=[{"user_id": 40 + i, "amount": float(matrix[i, 0]), "merchant_category": 7} for i in range(rows)],
        feature_names=FEATURES,
        matrix=matrix,
        unknown=[i % 2 == 1 for i in range(rows)],
        scores=np.linspace(0.2, 0.8, rows, dtype=np.float32) if scores is None else scores,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def parts(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


class Switchable:
    """The object store stand-in: a local folder behind open_output_stream (the S3 path of the sink),
    which refuses while `down` and waits while `held` is clear."""

    def __init__(self) -> None:
        self.down = False
        self.held = threading.Event()
        self.held.set()
        self.local = fs.LocalFileSystem()

    def open_output_stream(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.held.wait()
        if self.down:
            raise OSError("AWS Error NETWORK_CONNECTION: connection refused")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self.local.open_output_stream(path, *args, **kwargs)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[Callable[..., DecisionLog]]:
    made: list[DecisionLog] = []

    def make(filesystem: Any = None, **settings: Any) -> DecisionLog:
        options = {"flush_seconds": 60.0, "batch_records": 1000, "spill_dir": tmp_path / "spill", **settings}
        sink = DecisionLog(IDENTITY, filesystem or fs.LocalFileSystem(), str(tmp_path / "out"), **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close(timeout=5)


def test_close_flushes_one_file_per_version_and_day_with_one_record_per_row(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    sink = sinks()
    sink.offer(offer("a", rows=3, version="3"))
    sink.offer(offer("b", rows=2, version="4"))
    late = offer("c", rows=1, version="3")
    sink.offer(Offer(**{**late.__dict__, "decided_at": datetime(2026, 12, 6, 0, 1, tzinfo=UTC)}))
    written = count("written")
    time.sleep(0.3)
    assert parts(tmp_path / "out") == []  # neither 1000 records nor 60 s: nothing flushed yet
    sink.close()
    files = parts(tmp_path / "out")
    folders = sorted(str(p.parent.relative_to(tmp_path / "out")) for p in files)
    assert folders == [
        "model=fraud-detector/version=3/date=2026-12-05",
        "model=fraud-detector/version=3/date=2026-12-06",
        "model=fraud-detector/version=4/date=2026-12-05",
    ]
    assert count("written") - written == 6
    table = ds.dataset(str(tmp_path / "out"), format="parquet", partitioning="hive").to_table()
    decision_record.check_schema(ds.dataset(str(files[0])).schema, str(files[0]))
    got = {row["decision_id"]: row for row in table.to_pylist()}
    assert sorted(got) == ["a/0", "a/1", "a/2", "b/0", "b/1", "c/0"]
    first = got["a/2"]
    assert first["model_sha256"] == "b" * 64 and first["model_version"] == "3" and first["namespace"] == "fraud"
    assert first["feature_names"] == FEATURES and first["feature_values"] == [6.0, 7.0, 8.0]
    assert first["entity_id"] == "42" and first["unknown_entity"] is False
    assert first["score"] == pytest.approx(0.8) and first["threshold"] == 0.5 and first["decision"] == 1
    assert got["a/0"]["decision"] == 0 and got["a/1"]["unknown_entity"] is True


def test_a_batch_is_flushed_at_batch_records_and_after_flush_seconds(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    by_count = sinks(batch_records=4)
    by_count.offer(offer("a", rows=2))
    time.sleep(0.3)
    assert parts(tmp_path / "out") == []
    by_count.offer(offer("b", rows=2))
    wait_for(lambda: len(parts(tmp_path / "out")) == 1, seconds=3)
    by_time = DecisionLog(IDENTITY, fs.LocalFileSystem(), str(tmp_path / "timed"), flush_seconds=0.3,
                          spill_dir=tmp_path / "spill2")  # fmt: skip
    try:
        by_time.offer(offer("c", rows=1))
        wait_for(lambda: len(parts(tmp_path / "timed")) == 1, seconds=3)
    finally:
        by_time.close()


def test_a_failing_destination_spills_then_resends_when_it_answers(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    store = Switchable()
    store.down = True
    spilled, written = count("spilled"), count("written")
    sink = sinks(store, batch_records=2, flush_seconds=0.2)
    sink.offer(offer("a", rows=2))
    wait_for(lambda: count("spilled") - spilled == 2)
    assert parts(tmp_path / "out") == [] and len(parts(tmp_path / "spill")) == 1
    assert spill_bytes() == parts(tmp_path / "spill")[0].stat().st_size > 0
    sink.offer(offer("b", rows=2))  # still down: the new batch waits behind the spilled one
    wait_for(lambda: count("spilled") - spilled == 4)
    store.down = False
    wait_for(lambda: len(parts(tmp_path / "out")) == 2)  # re-sent without a new offer
    wait_for(lambda: parts(tmp_path / "spill") == [])
    # the counter moves after the file lands and the spill is removed: read it once it has
    wait_for(lambda: count("written") - written >= 4)
    assert count("written") - written == 4 and spill_bytes() == 0
    table = ds.dataset(str(tmp_path / "out"), format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("decision_id").to_pylist()) == ["a/0", "a/1", "b/0", "b/1"]


def test_past_the_spill_bound_records_are_dropped_and_counted(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    store = Switchable()
    store.down = True
    dropped, spilled = count("dropped"), count("spilled")
    sink = sinks(store, batch_records=2, flush_seconds=0.2, spill_max_bytes=12_000)
    sink.offer(offer("a", rows=2))  # one file of a few KiB fits
    wait_for(lambda: count("spilled") - spilled == 2)
    for name in "bcdefgh":
        sink.offer(offer(name, rows=2))
    wait_for(lambda: count("spilled") - spilled + count("dropped") - dropped == 16)
    assert count("dropped") - dropped >= 2  # the bound was reached
    assert sum(p.stat().st_size for p in parts(tmp_path / "spill")) <= 12_000


def test_a_full_queue_never_blocks_offer_and_counts_the_drop(tmp_path: Path, sinks: Callable[..., DecisionLog]) -> None:
    store = Switchable()
    store.held.clear()  # the destination hangs: the thread is stuck in its first write
    dropped = count("dropped")
    sink = sinks(store, batch_records=1, queue_max_records=5)
    sink.offer(offer("first", rows=1))
    time.sleep(0.2)  # the thread took it and waits on the destination
    started = time.perf_counter()
    for index in range(2000):
        sink.offer(offer(f"r{index}", rows=1))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed  # ~µs each: never waits for the queue or the destination
    assert count("dropped") - dropped == 2000 - 5  # five fit in the queue
    store.held.set()
    sink.close()
    assert len(parts(tmp_path / "out")) >= 1


def test_an_offer_that_cannot_be_recorded_is_dropped_not_raised(sinks: Callable[..., DecisionLog]) -> None:
    dropped = count("dropped")
    sink = sinks()
    broken = offer("x", rows=2)
    sink.offer(Offer(**{**broken.__dict__, "unknown": [False]}))  # 2 rows, 1 flag
    sink.close()
    assert count("dropped") - dropped == 2
    with pytest.raises(ValueError, match="2 rows"):
        records_of(Offer(**{**broken.__dict__, "unknown": [False]}), IDENTITY)


def test_multiclass_decides_the_argmax_and_regression_decides_nothing() -> None:
    classes = offer("m", rows=2, scores=np.asarray([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]], dtype=np.float32))
    first, second = records_of(classes, IDENTITY)
    assert first.decision == 1 and first.score == pytest.approx(0.5) and first.threshold is None
    assert first.class_scores == pytest.approx([0.2, 0.5, 0.3])
    assert second.decision == 0  # a tie goes to the lower class
    regression = Identity(**{**IDENTITY.__dict__, "threshold": None})
    (value,) = records_of(offer("r", rows=1, scores=[42.5]), regression)
    assert value.score == 42.5 and value.decision is None and value.threshold is None


def test_destinations_are_s3_or_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    filesystem, root = open_destination("s3://decisions/fraud/")
    assert type(filesystem).__name__ == "S3FileSystem" and root == "decisions/fraud"
    filesystem, root = open_destination(str(tmp_path / "decisions"))
    assert type(filesystem).__name__ == "LocalFileSystem" and root == str(tmp_path / "decisions")


def test_the_log_is_derived_from_the_environment_and_refused_without_a_sha256(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from components.config import DecisionLogSettings
    from components.serving.decision_log import Refused, from_environment

    settings = DecisionLogSettings(spill_dir=str(tmp_path / "spill"), flush_seconds=60)
    args = ("fraud-detector", "user_id", "d" * 64, 0.4, 2, settings)
    assert from_environment(*args, env={}) is None  # no destination: off, with a warning
    assert "MLOPS_DECISION_LOG_URI is not set" in caplog.text
    off = DecisionLogSettings(enabled=False)
    assert from_environment(*args[:5], off, env={"MLOPS_DECISION_LOG_URI": str(tmp_path)}) is None
    env = {"MLOPS_DECISION_LOG_URI": str(tmp_path / "decisions" / "fraud"), "MLOPS_NAMESPACE": "fraud",
           "MLOPS_SERVING_ROLE": "canary", "K_REVISION": "fraud-detector-predictor-00002"}  # fmt: skip
    sink = from_environment(*args, env=env)
    assert isinstance(sink, DecisionLog)
    assert sink.identity == Identity("fraud", "fraud-detector", "d" * 64, "canary", "fraud-detector-predictor-00002",
                                     "user_id", 0.4)  # fmt: skip
    sink.offer(offer("e", rows=1))
    sink.close()
    assert len(parts(tmp_path / "decisions" / "fraud")) == 1
    dropped = count("dropped")
    refused = from_environment("fraud-detector", "user_id", None, 0.4, 2, settings, env=env)
    assert isinstance(refused, Refused) and "mlops_model_sha256" in refused.reason and "republish" in refused.reason
    refused.offer(offer("f", rows=3))  # serving goes on; every row is counted, so the drop alert fires
    assert count("dropped") - dropped == 3
    wrong_role = from_environment(*args, env={**env, "MLOPS_SERVING_ROLE": "shadow"})
    assert isinstance(wrong_role, Refused) and "champion, canary" in wrong_role.reason


def test_the_metrics_hold_in_a_process_whose_multiprocess_folder_came_and_went() -> None:
    """Feast sets PROMETHEUS_MULTIPROC_DIR when imported (feast/metrics.py); prometheus_client's own Counter
    and Gauge then fail once it is unset again (a test's temporary environment). The log's figures must not."""
    import subprocess
    import sys

    script = (
        "import os; os.environ['PROMETHEUS_MULTIPROC_DIR'] = '/nonexistent'\n"
        "import prometheus_client; del os.environ['PROMETHEUS_MULTIPROC_DIR']\n"
        "from components.serving.decision_log import METRICS\n"
        "METRICS.count('dropped', 3); METRICS.spill_bytes(42)\n"
        "r = prometheus_client.REGISTRY\n"
        "print(r.get_sample_value('mlops_decision_log_records_total', {'outcome': 'dropped'}),"
        " r.get_sample_value('mlops_decision_log_spill_bytes'))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["3.0", "42.0"]


def test_a_destination_that_cannot_be_opened_refuses_the_log_not_the_transformer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.config import DecisionLogSettings
    from components.serving import decision_log

    def broken(uri: str) -> Any:
        raise OSError("pyarrow could not build the S3 client")

    monkeypatch.setattr(decision_log, "open_destination", broken)
    sink = decision_log.from_environment("m", "user_id", "d" * 64, 0.5, 2, DecisionLogSettings(),
                                         env={"MLOPS_DECISION_LOG_URI": "s3://decisions/fraud/"})  # fmt: skip
    assert isinstance(sink, decision_log.Refused) and "could not be opened" in sink.reason
