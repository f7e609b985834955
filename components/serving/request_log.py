"""Request outcomes: what became of each request the scoring transformer answered, per model version.

Issue 32 item 4: the canary analysis compares the canary's error rate and p99 latency with the
champion's. The decision log cannot say either: it records scored rows only (a failed request scores
nothing) and no latency, and KServe's own request histograms carry the model name only. So, per
request, the transformer (components/serving/transformer.py) records here:

- one RequestOutcome, off the request path, through the decision log's own bounded queue and writer
  thread (components/serving/decision_log.py: never waits, never fails a request; spilled and re-sent
  as decision files are), as Parquet beside the decisions but in a folder of its own,

      <log root>/_requests/model=<name>/version=<v>/date=<YYYY-MM-DD>/part-<uuid>.parquet

  which the decision log's readers never see (pyarrow.dataset skips `_`-prefixed folders, as it does
  `_outcomes/`), so no decision reader changes and the decision schema stays as it is;
- the same outcome in this process's Prometheus figures (`METRICS`, on KServe's /metrics): a request
  counter by model, version, role and code class, and a latency histogram by model, version and role.
  The tenant's PodMonitor keeps exactly `FAMILIES` (pipelines/tenant_monitoring.py).

The version is the one the predictor answered with (`version_source` "answer"). A request that failed
before the predictor answered has none; it is given the one version this transformer has answered with
so far, when there is exactly one ("served": a revision's transformer fronts one predictor), else it
is unattributed (version "", partition `version=unattributed`, "none"): in Standard mode one
transformer fronts both predictors, and guessing would charge one version with another's errors.
Requests refused before they reach the model (RequestGuard: body over the limit, explain while off) are
not recorded: no version is involved. Latency is the transformer's whole handling of the request
(preprocess, the Redis join, every predictor call, the answer), in milliseconds.

pyarrow, prometheus_client and the standard library: it runs in the transformer's environment.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "BUCKETS",
    "CALL",
    "CODE_CLASSES",
    "FAMILIES",
    "FOLDER",
    "LATENCY",
    "LOG_RECORDS",
    "METRICS",
    "REQUESTS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "UNATTRIBUTED",
    "Call",
    "Recorder",
    "RequestFigures",
    "RequestOutcome",
    "check_schema",
    "files_of",
    "status_of",
]

SCHEMA_VERSION = 1
"""Bumped when a field is added; each file records it in its metadata under `mlops.request_schema`."""
FOLDER = "_requests"
"""Under the decision log's root; `_` keeps it out of every decision reader's dataset."""
STATUSES = ("ok", "client_error", "server_error")
CODE_CLASSES = {"ok": "2xx", "client_error": "4xx", "server_error": "5xx"}
"""A status as the request counter's `code_class` label."""
UNATTRIBUTED = "unattributed"
"""The version partition and metric label of a request no version can be named for."""
REQUESTS = "mlops_transformer_requests"
"""Requests answered, by model, version, role and code_class (exposed with `_total`)."""
LATENCY = "mlops_transformer_request_seconds"
"""The transformer's whole handling of a request, by model, version and role (a histogram)."""
LOG_RECORDS = "mlops_request_log_records"
"""Request outcome records by what became of them: written, spilled or dropped (exposed with `_total`)."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""The latency histogram's upper bounds in seconds (+Inf added): p99 by histogram_quantile."""
FAMILIES = (
    f"{REQUESTS}_total",
    f"{LATENCY}_bucket",
    f"{LATENCY}_sum",
    f"{LATENCY}_count",
    f"{LOG_RECORDS}_total",
)
"""Every series name this module exposes: the PodMonitor's keep-list takes them from here."""
_METADATA_KEY = b"mlops.request_schema"

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("answered_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("version_source", pa.string(), nullable=False),
        pa.field("serving_role", pa.string(), nullable=False),
        pa.field("revision", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("code", pa.int32(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("rows", pa.int32(), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
    ],
    metadata={_METADATA_KEY: str(SCHEMA_VERSION).encode()},
)
"""Field by field (docs/serving.md, "Request outcomes"): request_id as in the decision log; answered_at
when the answer or the error was given, UTC; model_version "" when unattributed, version_source
answer | served | none (module docstring); status ok | client_error | server_error and the HTTP
code answered; latency_ms the whole handling; rows the rows the request carried (0 when unparsed)."""


def status_of(code: int) -> str:
    """An HTTP status code as a status: 2xx/3xx ok, 4xx the caller's error, anything else the server's."""
    return "ok" if code < 400 else "client_error" if code < 500 else "server_error"


@dataclass(frozen=True)
class RequestOutcome:
    """One answered (or failed) request, as the transformer hands it over."""

    request_id: str
    answered_at: datetime
    model_version: str
    version_source: str
    code: int
    latency_ms: float
    row_count: int

    @property
    def status(self) -> str:
        return status_of(self.code)


def _relative(model: str, version: str, day: str) -> str:
    for name, value in (("model", model), ("version", version), ("date", day)):
        if not value or "/" in value or "=" in value:
            raise ValueError(f"{name} {value!r} cannot name a partition")
    return f"{FOLDER}/model={model}/version={version}/date={day}/part-{uuid.uuid4().hex}.parquet"


def files_of(outcomes: Iterable[RequestOutcome], identity: Any) -> list[tuple[str, bytes, int]]:
    """Outcomes as Parquet files, one per (version, day): (path under the log's root, bytes, records).
    `identity` is the decision log's Identity (namespace, model, role, revision)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        at = outcome.answered_at.astimezone(UTC)
        row = {
            "request_id": outcome.request_id,
            "answered_at": at,
            "namespace": identity.namespace,
            "model_name": identity.model_name,
            "model_version": outcome.model_version,
            "version_source": outcome.version_source,
            "serving_role": identity.serving_role,
            "revision": identity.revision,
            "status": outcome.status,
            "code": int(outcome.code),
            "latency_ms": float(outcome.latency_ms),
            "rows": int(outcome.row_count),
            "schema_version": SCHEMA_VERSION,
        }
        groups.setdefault((outcome.model_version or UNATTRIBUTED, at.strftime("%Y-%m-%d")), []).append(row)
    files = []
    for (version, day), rows in groups.items():
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer, compression="zstd")
        files.append((_relative(identity.model_name, version, day), buffer.getvalue().to_pybytes(), len(rows)))
    return files


def check_schema(schema: pa.Schema, source: str) -> int:
    """The version a request file was written with; ValueError when it is newer than this reader."""
    raw = (schema.metadata or {}).get(_METADATA_KEY)
    if raw is None:
        raise ValueError(f"{source}: no {_METADATA_KEY.decode()} metadata: not a request outcome file")
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise ValueError(f"{source} was written with request schema {version}; this reader knows up to"
                         f" {SCHEMA_VERSION}: upgrade private-mlops")  # fmt: skip
    return version


class RequestFigures(Collector):
    """The per-version request figures as one collector: plain numbers under a lock, for the reason
    decision_log.Figures gives (prometheus_client's Counter follows a multiprocess folder Feast sets)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str, str], int] = {}
        self._latency: dict[tuple[str, str, str], list[float]] = {}
        """Per (model, version, role): a count per bucket (the last is +Inf), then the sum."""
        self._log = dict.fromkeys(("written", "spilled", "dropped"), 0)

    def observe(self, model: str, version: str, role: str, code: int, seconds: float) -> None:
        """One answered request: counted by its code class, its latency into the histogram."""
        version = version or UNATTRIBUTED
        key = (model, version, role, CODE_CLASSES[status_of(code)])
        index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._latency.setdefault((model, version, role), [0.0] * (len(BUCKETS) + 2))
            counts[index] += 1
            counts[-1] += seconds

    def count_log(self, outcome: str, records: int) -> None:
        with self._lock:
            self._log[outcome] += records

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests, logged = dict(self._requests), dict(self._log)
            latency = {key: list(counts) for key, counts in self._latency.items()}
        counter = CounterMetricFamily(REQUESTS, "Requests the scoring transformer answered, by model, version"
                                      " (unattributed: failed before any version answered), serving role and"
                                      " code class.", labels=["model", "version", "role", "code_class"])  # fmt: skip
        for key, value in sorted(requests.items()):
            counter.add_metric(list(key), float(value))
        yield counter
        histogram = HistogramMetricFamily(LATENCY, "The scoring transformer's whole handling of a request, in"
                                          " seconds, by model, version and serving role.",
                                          labels=["model", "version", "role"])  # fmt: skip
        for series, counts in sorted(latency.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip([*(str(b) for b in BUCKETS), "+Inf"], counts[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            histogram.add_metric(list(series), buckets, counts[-1])
        yield histogram
        records = CounterMetricFamily(LOG_RECORDS, "Request outcome records by outcome: written to the decision"
                                      " log's destination, spilled to the pod's disk, or dropped.",
                                      labels=["outcome"])  # fmt: skip
        for outcome, value in logged.items():
            records.add_metric([outcome], float(value))
        yield records


METRICS = RequestFigures()
with contextlib.suppress(ValueError):  # imported a second time under another name: the first one's stand
    REGISTRY.register(METRICS)


@dataclass
class Call:
    """What one request's handling learned, for its outcome: set by the transformer's preprocess and predict."""

    request_id: str = ""
    version: str = ""
    rows: int = 0


CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("mlops_request_call", default=None)
"""The request being handled in this task (the transformer's __call__ sets it around KServe's)."""


class Recorder:
    """One transformer's request outcomes: the versions its predictor answered with, and `record`."""

    def __init__(self, model: str, role: str) -> None:
        self.model, self.role = model, role
        self.versions: set[str] = set()

    @staticmethod
    def started(request_id: str, rows: int) -> None:
        if (call := CALL.get()) is not None:
            call.request_id, call.rows = request_id, rows

    def answered(self, version: str) -> None:
        if version:
            self.versions.add(version)
            if (call := CALL.get()) is not None:
                call.version = version

    def attribution(self, call: Call) -> tuple[str, str]:
        """(version, version_source): the answer's; else the one version answered so far; else none."""
        if call.version:
            return call.version, "answer"
        if len(self.versions) == 1:
            return next(iter(self.versions)), "served"
        return "", "none"

    def record(self, call: Call, code: int, seconds: float, sink: Any) -> None:
        """Into METRICS and, when there is a log (`sink`, the decision log), its queue; never raises."""
        try:
            version, source = self.attribution(call)
            METRICS.observe(self.model, version, self.role, code, seconds)
            if sink is not None:
                at = datetime.now(UTC)
                sink.offer(RequestOutcome(call.request_id, at, version, source, code, seconds * 1e3, call.rows))
        except Exception:
            logging.getLogger(__name__).exception("request %s: its outcome was not recorded", call.request_id)
