"""Request outcomes (issue 32 item 4): every request the transformer handles, answered or failed, is recorded
per version, off the request path, beside the decision log, and counted per version on /metrics.

The transformer runs in its own environment (kserve), so its KServe __call__ is driven there by a probe
(tests/components/request_outcome_probe.py) with a Redis-join and a Triton stand-in. The sink's side, the
decision log's queue and thread carrying the outcomes, is checked here directly, with the object store
stand-in of tests/components/test_decision_log.py (a folder that can refuse or hang).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from prometheus_client import REGISTRY

from components.serving import request_log
from components.serving.decision_log import DecisionLog
from components.serving.request_log import Call, Recorder, RequestOutcome
from tests.components.test_decision_log import Switchable, count, offer, parts, sinks, wait_for

__all__ = ["sinks"]  # the fixture, shared with test_decision_log

ROOT = Path(__file__).resolve().parents[2]
TRANSFORMER_PYTHON = ROOT / ".venv-transformer" / "bin" / "python"


def logged(outcome: str) -> float:
    return REGISTRY.get_sample_value("mlops_request_log_records_total", {"outcome": outcome}) or 0.0


def outcome(request_id: str, version: str = "3", code: int = 200, latency_ms: float = 12.5) -> RequestOutcome:
    at = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    return RequestOutcome(request_id, at, version, "answer" if version else "none", code, latency_ms, 2)


def test_the_transformer_records_every_request_it_handles_per_version() -> None:
    """Through KServe's Model.__call__: answered requests under the version that answered; failures before
    any answer under the one version answered so far ("served"), or unattributed while none, or once two
    versions answered (a Standard-mode transformer fronting both); client errors apart from server errors;
    the latency the whole handling took (a 200 ms predictor shows); and the same per version on /metrics."""
    if not TRANSFORMER_PYTHON.exists():
        pytest.fail("the transformer's environment is missing: make transformer-env")
    done = subprocess.run(
        [str(TRANSFORMER_PYTHON), "-m", "tests.components.request_outcome_probe"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    probed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert probed["codes"] == [503, 200, 200, 400, 503, 200, 503]
    seen = {row["request_id"]: row for row in probed["outcomes"]}
    assert list(seen) == sorted(["bad-field", "failed-before-any-answer", "ok-1", "ok-slow", "ok-v4", "redis-down",
                                 "redis-down-two-versions"])  # fmt: skip
    expected = {
        "failed-before-any-answer": ("", "none", "server_error", 503, "unattributed"),
        "ok-1": ("3", "answer", "ok", 200, "3"),
        "ok-slow": ("3", "answer", "ok", 200, "3"),
        "bad-field": ("3", "served", "client_error", 400, "3"),
        "redis-down": ("3", "served", "server_error", 503, "3"),
        "ok-v4": ("4", "answer", "ok", 200, "4"),
        "redis-down-two-versions": ("", "none", "server_error", 503, "unattributed"),
    }
    for request_id, (version, source, status, code, partition) in expected.items():
        row = seen[request_id]
        got = (row["model_version"], row["version_source"], row["status"], row["code"], row["version"])
        assert got == (version, source, status, code, partition), request_id
        assert row["serving_role"] == "canary" and row["model"] == "m" and row["namespace"] == "ns"
    assert seen["ok-slow"]["latency_ms"] >= 200.0 > seen["ok-1"]["latency_ms"]
    assert seen["bad-field"]["rows"] == 1 and seen["ok-1"]["rows"] == 2
    assert probed["decision_requests"] == ["ok-1", "ok-slow", "ok-v4"]  # the decision readers never see `_requests`
    metrics = probed["metrics"]
    assert (metrics["3/2xx"], metrics["3/4xx"], metrics["3/5xx"], metrics["3/count"]) == (2.0, 1.0, 1.0, 4.0)
    assert metrics["3/le0.1"] == 3.0  # the 200 ms request is above the 0.1 s bucket
    assert (metrics["4/2xx"], metrics["4/5xx"], metrics["unattributed/5xx"]) == (1.0, None, 2.0)


def test_outcomes_ride_the_decision_logs_queue_into_their_own_folder(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    """One queue, one thread, one flush: decisions under model=/version=/date=, outcomes under
    `_requests/model=/version=/date=` (a failure no version could be named for under version=unattributed),
    each counted under its own metric; the decision log's readers read the decisions only."""
    from components.platform import decisions

    written, decisions_written = logged("written"), count("written")
    sink = sinks()
    sink.offer(offer("req-a", rows=3))
    for item in (outcome("req-a"), outcome("req-b", code=503), outcome("req-c", version="", code=503)):
        sink.offer(item)
    sink.close()
    out = tmp_path / "out"
    requests = ds.dataset(out / "_requests", format="parquet", partitioning="hive").to_table()
    rows = sorted(requests.select(["request_id", "model_version", "version", "status", "latency_ms"]).to_pylist(),
                  key=lambda row: row["request_id"])  # fmt: skip
    assert rows == [
        {"request_id": "req-a", "model_version": "3", "version": "3", "status": "ok", "latency_ms": 12.5},
        {"request_id": "req-b", "model_version": "3", "version": "3", "status": "server_error", "latency_ms": 12.5},
        {"request_id": "req-c", "model_version": "", "version": "unattributed", "status": "server_error",
         "latency_ms": 12.5},
    ]  # fmt: skip
    assert set(requests.column("serving_role").to_pylist()) == {"champion"}
    assert (logged("written") - written, count("written") - decisions_written) == (3, 3)
    read = decisions.between(f"{out}/", "fraud-detector", "2026-12-05", "2026-12-05")
    assert read.num_rows == 3 and set(read.column("request_id").to_pylist()) == {"req-a"}


def test_request_files_spill_and_are_resent_under_their_own_count(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    store = Switchable()
    store.down = True
    spilled, written, decisions_spilled = logged("spilled"), logged("written"), count("spilled")
    sink = sinks(store, flush_seconds=0.05)
    sink.offer(outcome("down-1"))
    wait_for(lambda: logged("spilled") - spilled == 1)
    assert count("spilled") == decisions_spilled  # not counted as a decision
    assert [p.relative_to(tmp_path / "spill").parts[3] for p in parts(tmp_path / "spill")] == ["_requests"]
    store.down = False
    wait_for(lambda: logged("written") - written == 1)
    sink.close()
    assert parts(tmp_path / "spill") == [] and len(parts(tmp_path / "out" / "_requests")) == 1


def test_the_request_path_never_waits_for_or_fails_because_of_the_outcome_log(
    tmp_path: Path, sinks: Callable[..., DecisionLog]
) -> None:
    """A hung destination and a full queue: recording is a put_nowait (µs), the overflow counted dropped;
    a sink that raises never reaches the request."""
    store = Switchable()
    store.held.clear()  # the destination hangs: the thread is stuck in its first write
    dropped = logged("dropped")
    sink = sinks(store, batch_records=1, queue_max_records=5)
    recorder = Recorder("fraud-detector", "champion")
    recorder.record(Call("first", "3", 1), 200, 0.01, sink)
    time.sleep(0.2)  # the thread took it and waits on the destination
    started = time.perf_counter()
    for index in range(2000):
        recorder.record(Call(f"r{index}", "3", 1), 200, 0.01, sink)
    assert time.perf_counter() - started < 1.0  # never waits for the queue or the destination
    assert logged("dropped") - dropped == 2000 - 5  # five fit in the queue

    class Broken:
        def offer(self, item: Any) -> None:
            raise RuntimeError("the sink is broken")

    recorder.record(Call("broken", "3", 1), 200, 0.01, Broken())  # logged, not raised
    before = REGISTRY.get_sample_value("mlops_transformer_requests_total", {"model": "fraud-detector",
                                       "version": "3", "role": "champion", "code_class": "2xx"})  # fmt: skip
    assert before is not None and before >= 2002
    store.held.set()


def test_attribution_is_the_answer_else_the_only_version_answered_else_none() -> None:
    recorder = Recorder("m", "canary")
    assert recorder.attribution(Call("a")) == ("", "none")
    recorder.answered("")  # a predictor that named no version: nothing learned
    assert recorder.attribution(Call("a")) == ("", "none")
    recorder.answered("7")
    assert recorder.attribution(Call("a")) == ("7", "served")
    assert recorder.attribution(Call("a", version="8")) == ("8", "answer")
    recorder.answered("8")
    assert recorder.attribution(Call("a")) == ("", "none")
    assert [request_log.status_of(c) for c in (200, 302, 400, 404, 499, 500, 503)] == [
        "ok", "ok", "client_error", "client_error", "client_error", "server_error", "server_error"
    ]  # fmt: skip
