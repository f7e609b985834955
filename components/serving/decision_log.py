"""The decision log's sink: what the scoring transformer hands over after each answer, written off the
request path as Parquet in the object store (issue 32 item 1).

    request path: offer(...) --put_nowait--> bounded queue --> one background thread
                                                                |  DecisionRecords, one Parquet file
                                                                |  per (model, version, day) per flush
                                                                +--> s3://decisions/<namespace>/... or a folder
                                                                +--> on a failed write: the spill folder

A request never waits for the log and never fails because of it: `offer` is a `put_nowait` of the raw
material (rows as sent, the feature matrix, scores, version, time); a full queue drops the offer and
counts its rows. Records are built and serialised on the thread. A batch the destination refuses is
spilled to a local folder, as the Parquet file it would have been, up to `spill_max_bytes`; spilled
files are re-sent first once the destination answers again and removed only after their write
succeeded. Past the bound, records are dropped and counted. Every file appears whole or not at all:
a local file is written under a temporary name and renamed; an S3 object appears when its upload
completes. The same queue and thread carry each request's outcome (components/serving/request_log.py:
version, status, latency), written under `_requests/` beside the decisions, counted in its own metrics.

Metrics (prometheus_client's default registry, which KServe's ModelServer serves at /metrics):
    mlops_decision_log_records_total{outcome="written"|"spilled"|"dropped"}   records, by what became of them
    mlops_decision_log_spill_bytes                                            bytes waiting in the spill folder
This module is pyarrow, prometheus_client and the standard library: the transformer's environment.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from components.serving import decision_record, request_log
from components.serving.decision_record import NAMESPACE_VARIABLE, REVISION_VARIABLE, ROLE_VARIABLE, URI_VARIABLE
from components.serving.request_log import RequestOutcome

if TYPE_CHECKING:
    from components.config import DecisionLogSettings

__all__ = [
    "METRICS",
    "RECORDS",
    "SPILL_BYTES",
    "DecisionLog",
    "Figures",
    "Identity",
    "Offer",
    "Refused",
    "Sink",
    "from_environment",
    "now",
    "open_destination",
    "records_of",
]

log = logging.getLogger(__name__)

RECORDS = "mlops_decision_log_records"
"""The records counter's family name (exposed with `_total`); the alert rules read it (manifests/base/monitoring)."""
SPILL_BYTES = "mlops_decision_log_spill_bytes"
"""The spill gauge's family name."""


class Figures(Collector):
    """The log's metrics as one collector on the default registry: plain numbers under a lock. Not
    prometheus_client's Counter and Gauge: their values follow PROMETHEUS_MULTIPROC_DIR as it was when
    prometheus_client was first imported, and Feast sets it when imported (feast/metrics.py)."""

    OUTCOMES = ("written", "spilled", "dropped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records = dict.fromkeys(self.OUTCOMES, 0)
        self._spill_bytes = 0

    def count(self, outcome: str, records: int) -> None:
        with self._lock:
            self._records[outcome] += records

    def spill_bytes(self, value: int) -> None:
        with self._lock:
            self._spill_bytes = value

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            records, spill = dict(self._records), self._spill_bytes
        counter = CounterMetricFamily(
            RECORDS,
            "Decision log records by outcome: written to the destination, spilled to the pod's disk, or dropped"
            " (queue full, spill folder full, unbuildable, or a log refused for a config without its sha256).",
            labels=["outcome"],
        )
        for outcome, value in records.items():
            counter.add_metric([outcome], float(value))
        yield counter
        yield GaugeMetricFamily(SPILL_BYTES, "Bytes of decision log files waiting in the spill"
                                " folder.", value=float(spill))  # fmt: skip


METRICS = Figures()
try:
    REGISTRY.register(METRICS)
except ValueError:  # this module imported a second time under another name: the first one's figures stand
    log.warning("decision log: its metrics are already registered")
_PARTIAL = ".partial-"
"""A file being written: pyarrow.dataset and the spill scan skip it; renamed into place when whole."""


@dataclass(frozen=True)
class Identity:
    """What every record of this transformer shares: who decides, derived once at start."""

    namespace: str
    model_name: str
    model_sha256: str
    serving_role: str
    revision: str
    entity_column: str
    threshold: float | None
    """Binary models: the threshold the predictor's config records; None for regression and multiclass."""


@dataclass(frozen=True)
class Offer:
    """One answered request's raw material, as the request path hands it over (nothing converted)."""

    request_id: str
    decided_at: datetime
    model_version: str
    rows: Sequence[Mapping[str, Any]]
    feature_names: Sequence[str]
    matrix: Any
    """n rows of the feature values scored, in feature_names' order (a numpy array or nested lists)."""
    unknown: Sequence[bool]
    scores: Any
    """n scores, or n rows of k class probabilities for a multiclass model."""


def _plain(values: Any) -> list[Any]:
    return list(values.tolist() if hasattr(values, "tolist") else values)


def records_of(offer: Offer, identity: Identity) -> list[decision_record.DecisionRecord]:
    """One DecisionRecord per row: binary, score >= threshold; multiclass, the argmax class (ties to the
    lower index) with its probability as the score; regression (no threshold), no decision."""
    matrix, scores = _plain(offer.matrix), _plain(offer.scores)
    if not len(matrix) == len(scores) == len(offer.rows) == len(offer.unknown):
        raise ValueError(
            f"{len(offer.rows)} rows, {len(matrix)} vectors, {len(scores)} scores, {len(offer.unknown)} flags"
        )
    records = []
    for row, (request, vector, score) in enumerate(zip(offer.rows, matrix, scores, strict=True)):
        threshold, class_scores, decision = identity.threshold, None, None
        if isinstance(score, list):  # multiclass: k probabilities
            class_scores = [float(p) for p in score]
            decision = max(range(len(class_scores)), key=lambda k: (class_scores[k], -k))
            value: float | None = class_scores[decision]
            threshold = None
        else:
            value = float(score)
            if threshold is not None:
                decision = int(value >= threshold)
        entity = request.get(identity.entity_column)
        records.append(
            decision_record.DecisionRecord(
                request_id=offer.request_id,
                row=row,
                decided_at=offer.decided_at,
                namespace=identity.namespace,
                model_name=identity.model_name,
                model_version=offer.model_version,
                model_sha256=identity.model_sha256,
                serving_role=identity.serving_role,
                revision=identity.revision,
                entity_column=identity.entity_column,
                entity_id=None if entity is None else str(entity),
                request=request,
                feature_names=list(offer.feature_names),
                feature_values=[float(v) for v in vector],
                unknown_entity=bool(offer.unknown[row]),
                score=value,
                class_scores=class_scores,
                threshold=threshold,
                decision=decision,
            )
        )
    return records


def open_destination(uri: str) -> tuple[Any, str]:
    """The filesystem and root path of `uri`: `s3://bucket/prefix/` through pyarrow's S3 client (endpoint and
    keys from AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, as
    components/platform/s3_filesystem.py reads them), anything else a local folder."""
    from pyarrow import fs

    if uri.startswith("s3://"):
        filesystem = fs.S3FileSystem(
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            endpoint_override=os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL"),
            connect_timeout=5,
            request_timeout=30,
        )
        return filesystem, uri.removeprefix("s3://").rstrip("/")
    root = Path(uri.removeprefix("file://")).resolve()
    return fs.LocalFileSystem(), str(root)


def _size(offer: Offer | RequestOutcome) -> int:
    return 1 if isinstance(offer, RequestOutcome) else len(offer.rows)


def _count(what: Offer | RequestOutcome | str, outcome: str, records: int) -> None:
    """Decisions counted in METRICS, request outcomes (or their files) in request_log.METRICS."""
    requests = what.startswith(f"{request_log.FOLDER}/") if isinstance(what, str) else isinstance(what, RequestOutcome)
    (request_log.METRICS.count_log if requests else METRICS.count)(outcome, records)


def _local_put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{_PARTIAL}{path.name}.{uuid.uuid4().hex}")  # readers skip names starting with .
    partial.write_bytes(data)
    partial.replace(path)


class DecisionLog:
    """The sink: `offer` on the request path, everything else on one daemon thread; `close` drains it."""

    def __init__(
        self,
        identity: Identity,
        filesystem: Any,
        root: str,
        *,
        queue_max_records: int = 10_000,
        batch_records: int = 1_000,
        flush_seconds: float = 5.0,
        spill_max_bytes: int = 256 << 20,
        spill_dir: str | Path = "/tmp/mlops-decision-spill",
    ) -> None:
        self.identity, self.filesystem, self.root = identity, filesystem, root.rstrip("/")
        self.batch_records, self.flush_seconds, self.spill_max_bytes = batch_records, flush_seconds, spill_max_bytes
        self.spill_dir = Path(spill_dir) / identity.namespace / identity.model_name / identity.serving_role
        self._queue: queue.Queue[Offer | RequestOutcome] = queue.Queue()
        self._queue_max, self._queued, self._lock = max(1, queue_max_records), 0, threading.Lock()
        self._stop = threading.Event()
        self._local = type(filesystem).__name__ == "LocalFileSystem"
        self._spilled = sum(path.stat().st_size for path in self._spill_files())  # a restarted pod's leftovers
        METRICS.spill_bytes(self._spilled)
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    # --- the request path ---------------------------------------------------------------------------
    def offer(self, offer: Offer | RequestOutcome) -> None:
        """Hand one answered request (or an outcome) over; never blocks, never raises (full: dropped, counted)."""
        try:
            count = _size(offer)
            with self._lock:  # bounded in records, not requests: one request may carry max_rows of them
                full = self._queued + count > self._queue_max
                if not full:
                    self._queued += count
            if full:
                _count(offer, "dropped", count)
                return
            self._queue.put_nowait(offer)
        except Exception:  # the log must never fail a request
            log.exception("decision log: offer dropped")
            _count(offer, "dropped", _size(offer))

    # --- the thread -------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, flush, stop the thread (the ModelServer's shutdown calls it through the model's stop)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Offer | RequestOutcome] = []
        rows, since = 0, time.monotonic()
        while True:
            stopping = self._stop.is_set()
            try:
                offer = self._queue.get(timeout=0.0 if stopping else min(0.1, self.flush_seconds))
                with self._lock:
                    self._queued -= _size(offer)
                if not pending:
                    since = time.monotonic()
                pending.append(offer)
                rows += _size(offer)
            except queue.Empty:
                if stopping:
                    self._flush(pending)
                    return
            due = time.monotonic() - since >= self.flush_seconds
            if rows >= self.batch_records or (pending and due) or (not pending and due and self._spilled):
                self._flush(pending)
                pending, rows, since = [], 0, time.monotonic()

    def _flush(self, offers: list[Offer | RequestOutcome]) -> None:
        try:
            files = self._files(offers)
            sink_up = self._resend()
            for relative, data, count in files:
                if sink_up and self._put(relative, data):
                    _count(relative, "written", count)
                else:
                    sink_up = False
                    self._spill(relative, data, count)
        except Exception:  # a bug here must not kill the thread: log it, count what was lost
            log.exception("decision log: a flush failed")
            for offer in offers:
                _count(offer, "dropped", _size(offer))

    def _files(self, offers: list[Offer | RequestOutcome]) -> list[tuple[str, bytes, int]]:
        """Offers as Parquet files per (model, version, day): (path under the root, bytes, records)."""
        outcomes = [offer for offer in offers if isinstance(offer, RequestOutcome)]
        files = request_log.files_of(outcomes, self.identity) if outcomes else []
        groups: dict[tuple[str, str], list[decision_record.DecisionRecord]] = {}
        for offer in offers:
            if isinstance(offer, RequestOutcome):
                continue
            try:
                built = records_of(offer, self.identity)
            except Exception:
                log.exception("decision log: request %s could not be recorded", offer.request_id)
                METRICS.count("dropped", len(offer.rows))
                continue
            for record in built:
                groups.setdefault((record.model_version, record.day), []).append(record)
        ns = self.identity.namespace
        for (version, day), records in groups.items():
            key = decision_record.file_key(ns, self.identity.model_name, version or "unknown", day)
            buffer = pa.BufferOutputStream()
            decision_record.write_file(decision_record.table_of(records), buffer)
            files.append((key[len(decision_record.prefix(ns)) :], buffer.getvalue().to_pybytes(), len(records)))
        return files

    def _put(self, relative: str, data: bytes) -> bool:
        path = f"{self.root}/{relative}"
        try:
            if self._local:
                _local_put(Path(path), data)
            else:
                with self.filesystem.open_output_stream(path) as stream:  # the object appears on completion
                    stream.write(data)
            return True
        except Exception as error:
            log.warning("decision log: writing %s failed (%s); spilling to %s", path, error, self.spill_dir)
            return False

    def _spill(self, relative: str, data: bytes, count: int) -> None:
        if self._spilled + len(data) > self.spill_max_bytes:
            log.error("decision log: the spill folder %s is full (%d of %d bytes): %d records dropped",
                      self.spill_dir, self._spilled, self.spill_max_bytes, count)  # fmt: skip
            _count(relative, "dropped", count)
            return
        try:
            _local_put(self.spill_dir / relative, data)
        except OSError:
            log.exception("decision log: spilling to %s failed: %d records dropped", self.spill_dir, count)
            _count(relative, "dropped", count)
            return
        self._spilled += len(data)
        METRICS.spill_bytes(self._spilled)
        _count(relative, "spilled", count)

    def _spill_files(self) -> list[Path]:
        if not self.spill_dir.is_dir():
            return []
        found = [p for p in self.spill_dir.rglob("*.parquet") if p.is_file() and not p.name.startswith(_PARTIAL)]
        return sorted(found, key=lambda p: p.stat().st_mtime)

    def _resend(self) -> bool:
        """Re-send the spilled files, oldest first; False at the first the destination refuses (it is still down)."""
        for path in self._spill_files():
            data = path.read_bytes()
            if not self._put(relative := path.relative_to(self.spill_dir).as_posix(), data):
                return False
            path.unlink()
            self._spilled = max(0, self._spilled - len(data))
            METRICS.spill_bytes(self._spilled)
            _count(relative, "written", pq.read_metadata(pa.BufferReader(data)).num_rows)
        return True


class Sink(Protocol):
    """What the transformer holds: a DecisionLog, or a Refused one."""

    def offer(self, offer: Offer | RequestOutcome) -> None: ...

    def close(self, timeout: float = 30.0) -> None: ...


class Refused:
    """A log that cannot record truthfully (its model's sha256 is unknown, or a setting is wrong): every
    offered row is counted as dropped, so the alert on drops fires and names the gap; serving goes on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def offer(self, offer: Offer | RequestOutcome) -> None:
        _count(offer, "dropped", _size(offer))

    def close(self, timeout: float = 30.0) -> None:
        return None


def from_environment(
    model_name: str,
    entity_column: str,
    model_sha256: str | None,
    threshold: float | None,
    output_width: int,
    settings: DecisionLogSettings,
    env: Mapping[str, str] | None = None,
) -> Sink | None:
    """The transformer's log, from its settings, its predictor's config and its environment: where
    (MLOPS_DECISION_LOG_URI; unset, no log, one warning), whose (MLOPS_NAMESPACE, default `local`), which
    role (MLOPS_SERVING_ROLE, champion or canary) and revision (K_REVISION, Knative's; else `local`).
    A predictor config without its sha256 (published before issue 32) gives a Refused log: the
    transformer serves, every row is counted dropped, and the error says to republish."""
    env = os.environ if env is None else env
    if not settings.enabled:
        log.info("decision log: off (scoring.decision_log.enabled is false)")
        return None
    uri = env.get(URI_VARIABLE, "")
    if not uri:
        log.warning("decision log: off, %s is not set (the InferenceService sets it; mlops serve --with-features"
                    " sets it to $MLOPS_HOME/decisions/ locally, s3://decisions/<namespace>/ on the platform profile)",
                    URI_VARIABLE)  # fmt: skip
        return None
    role = env.get(ROLE_VARIABLE) or "champion"
    problem = None
    if model_sha256 is None:
        problem = (f"the predictor's config for {model_name} records no mlops_model_sha256, so no decision can name"
                   " the model that made it; fix: republish the repository (mlops promote the version again, or"
                   " restart mlops serve) with this version of private-mlops")  # fmt: skip
    elif role not in decision_record.ROLES:
        problem = f"{ROLE_VARIABLE}={role!r}; fix: set it to one of {', '.join(decision_record.ROLES)}"
    if problem is not None:
        log.error("decision log: refusing to record, every scored row is counted dropped: %s", problem)
        return Refused(problem)
    assert model_sha256 is not None
    if threshold is None and output_width == 2:
        log.warning("decision log: %s records no mlops_decision_threshold: binary decisions are logged with"
                    " their score and no decision; fix: republish with this version of private-mlops",
                    model_name)  # fmt: skip
    identity = Identity(
        namespace=env.get(NAMESPACE_VARIABLE) or "local",
        model_name=model_name,
        model_sha256=model_sha256,
        serving_role=role,
        revision=env.get(REVISION_VARIABLE) or "local",
        entity_column=entity_column,
        threshold=threshold,
    )
    try:
        filesystem, root = open_destination(uri)
        sink = DecisionLog(
            identity,
            filesystem,
            root,
            queue_max_records=settings.queue_max_records,
            batch_records=settings.batch_records,
            flush_seconds=settings.flush_seconds,
            spill_max_bytes=settings.spill_max_bytes,
            spill_dir=settings.spill_dir,
        )
    except Exception as error:  # the log never stops the transformer from serving
        problem = f"the decision log at {uri} could not be opened ({error}); fix: check {URI_VARIABLE} and spill_dir"
        log.error("decision log: refusing to record, every scored row is counted dropped: %s", problem)
        return Refused(problem)
    log.info("decision log: %s (%s, %s, revision %s) -> %s", model_name, identity.namespace, role,
             identity.revision, uri)  # fmt: skip
    return sink


def now() -> datetime:
    """The decision time: when the predictor answered, UTC."""
    return datetime.now(UTC)
