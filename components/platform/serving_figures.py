"""Per-version error rate and p99 latency over a window: from the decision log's request outcomes, or Prometheus.

Issue 32 item 4: the canary analysis (components/steps/canary_analysis.py) compares the canary's serving
figures with the champion's. The scoring transformer records every request it handles, answered or
failed, with the version that answered, its status and its latency, two ways
(components/serving/request_log.py):

- in the decision log's store, beside the decisions: `<log root>/_requests/model=/version=/date=/`,
  hive-partitioned Parquet. `from_log` reads it wherever the log is, locally and on the cluster alike
  (the log is in S3 either way): partitions prune by model and day, then `answered_at` by the window.
  The exact p99 of the recorded latencies per version;
- in the transformer's metrics, scraped by the tenant's PodMonitor into Prometheus (it adds `namespace`).
  `from_prometheus` asks Prometheus's query API (GET /api/v1/query at the window's end) for
      sum by (version, code_class) (increase(mlops_transformer_requests_total{namespace,model}[window]))
      histogram_quantile(0.99, sum by (version, le) (increase(mlops_transformer_request_seconds_bucket{...}[window])))
  so the p99 is the histogram's estimate (request_log.BUCKETS). A Prometheus that does not answer is a
  TransientError (exit 75: retried), never "not measured"; one that refuses the query, a permanent error.

The error rate is the share of server errors (5xx) among the requests a version answered, in percent:
a client error (4xx: a bad field, an unknown entity) is the caller's and is reported, not judged.
Requests no version can be named for (`unattributed`: failed before any predictor answered, on a
transformer fronting more than one version) are reported apart, never charged to either side.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from components.errors import ComponentError, TransientError

__all__ = [
    "STEP",
    "ServingFigures",
    "VersionFigures",
    "from_log",
    "from_prometheus",
    "queries",
    "requests_root",
]

STEP = "promote"
_CHECK_URL = "check promote.prometheus_url (or --prometheus): it must be Prometheus's own address"


@dataclass(frozen=True)
class VersionFigures:
    """One version's requests in the window: how many, how many failed and how, and the p99 latency."""

    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Server errors per 100 requests; None without requests."""
        return 100.0 * self.server_errors / self.requests if self.requests else None

    def as_evidence(self) -> dict[str, Any]:
        rate = self.error_rate
        return {**asdict(self), "error_rate_pct": None if rate is None else round(rate, 4)}


@dataclass(frozen=True)
class ServingFigures:
    """Every version's figures over the window, and where they came from."""

    source: str
    versions: dict[str, VersionFigures] = field(default_factory=dict)
    unattributed: VersionFigures = field(default_factory=VersionFigures)
    attributed_by_serving: int = 0
    """Failed requests given the one version their transformer had answered with (request_log: "served")."""
    missing: str = ""
    """Why there is nothing at all, when there is nothing (the store holds no request outcomes)."""


def requests_root(log_root: str) -> str:
    """Where the request outcomes of the decision log at `log_root` are: `<log root>/_requests/`."""
    from components.serving.request_log import FOLDER

    return f"{log_root.rstrip('/')}/{FOLDER}/"


def _p99(values: list[float]) -> float | None:
    import numpy as np

    return float(np.quantile(np.asarray(values, dtype="float64"), 0.99)) if values else None


def from_log(log_root: str, model: str, since: dt.datetime, until: dt.datetime) -> ServingFigures:
    """The figures of `model`'s request outcomes answered from `since` to `until`, per version."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from components.platform.decisions import STEP as READ_STEP
    from components.platform.decisions import s3_failure
    from components.serving.decision_log import open_destination
    from components.serving.request_log import SCHEMA, UNATTRIBUTED, check_schema

    root = requests_root(log_root)
    source = f"the decision log's request outcomes at {root}"
    filesystem, path = open_destination(root)
    partitions = [pa.field(name, pa.string()) for name in ("model", "version", "date")]
    try:
        hive = ds.partitioning(pa.schema(partitions), flavor="hive")
        schema = pa.schema([*SCHEMA, *partitions])
        dataset = ds.dataset(path, schema=schema, filesystem=filesystem, format="parquet", partitioning=hive)
        chosen = (ds.field("model") == model) & (ds.field("date") >= since.astimezone(dt.UTC).date().isoformat())
        chosen &= ds.field("date") <= until.astimezone(dt.UTC).date().isoformat()
        fragments = list(dataset.get_fragments(filter=chosen))
        for fragment in fragments:
            check_schema(fragment.physical_schema, fragment.path)
        picked = ds.FileSystemDataset(fragments, dataset.schema, ds.ParquetFileFormat(), dataset.filesystem)
        window = (ds.field("answered_at") >= since) & (ds.field("answered_at") <= until)
        rows = picked.to_table(columns=["model_version", "version_source", "status", "latency_ms"], filter=window)
    except FileNotFoundError:
        return ServingFigures(source, missing=f"nothing at {root}: no transformer has recorded a request outcome there")
    except ValueError as error:  # a newer schema, or not a request file
        raise ComponentError(READ_STEP, str(error), "upgrade private-mlops to a release that reads it") from error
    except OSError as error:
        if root.startswith("s3://"):
            raise s3_failure(error, root) from error
        raise
    if rows.num_rows == 0:
        return ServingFigures(source, missing=f"no request outcomes of {model} in the window at {root}")
    grouped: dict[str, dict[str, Any]] = {}
    served = 0
    for version, origin, status, latency in zip(*(rows.column(n).to_pylist() for n in rows.column_names), strict=True):
        side = grouped.setdefault(version or UNATTRIBUTED, {"latency": [], "server_error": 0, "client_error": 0})
        side["latency"].append(latency)
        side[status] = side.get(status, 0) + 1
        served += origin == "served" and status != "ok"
    figures = {
        version: VersionFigures(len(side["latency"]), side["server_error"], side["client_error"], _p99(side["latency"]))
        for version, side in grouped.items()
    }
    unattributed = figures.pop(UNATTRIBUTED, VersionFigures())
    return ServingFigures(source, figures, unattributed, served)


def queries(namespace: str, model: str, seconds: int) -> dict[str, str]:
    """The PromQL for the window's last `seconds`: requests by version and code class, p99 by version."""
    from components.serving.request_log import LATENCY, REQUESTS

    where = f"namespace={_quoted(namespace)},model={_quoted(model)}"
    return {
        "requests": f"sum by (version, code_class) (increase({REQUESTS}_total{{{where}}}[{seconds}s]))",
        "p99": f"histogram_quantile(0.99, sum by (version, le) (increase({LATENCY}_bucket{{{where}}}[{seconds}s])))",
    }


def _quoted(value: str) -> str:
    """A PromQL label value as a string literal: a model name holding `"` or `\\` cannot end the
    matcher early and widen the query to another namespace's series."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _query(url: str, promql: str, at: dt.datetime, timeout: float) -> list[dict[str, Any]]:
    """One instant query's vector; TransientError when Prometheus does not answer, ComponentError when it refuses."""
    address = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at.timestamp()})
    try:
        with urllib.request.urlopen(address, timeout=timeout) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as error:
        if error.code < 500 and error.code != 429:
            detail = error.read()[:300].decode(errors="replace")
            raise ComponentError(
                STEP, f"Prometheus at {url} refused the query {promql!r}: HTTP {error.code} {detail}", _CHECK_URL
            ) from error
        raise TransientError(
            STEP, f"Prometheus at {url} answered HTTP {error.code}", "retry; check Prometheus's health"
        ) from error
    except OSError as error:  # refused, unreachable, timed out
        raise TransientError(STEP, f"Prometheus at {url} did not answer the canary analysis's query: {error}",
                             "check that Prometheus is up and promote.prometheus_url (or --prometheus) reaches it; "
                             "or leave both unset to read the decision log's request outcomes") from error  # fmt: skip
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw[:300]
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping) or body.get("status") != "success" or data.get("resultType") != "vector":
        raise ComponentError(
            STEP, f"Prometheus at {url} answered {promql!r} without a vector: {str(body)[:300]}", _CHECK_URL
        )
    return list(data.get("result", []))


def _number(sample: Mapping[str, Any]) -> float:
    value = float(sample["value"][1])
    return value if math.isfinite(value) else math.nan


def from_prometheus(
    url: str, *, namespace: str, model: str, since: dt.datetime, until: dt.datetime, timeout: float = 10.0
) -> ServingFigures:
    """The figures of `model` in `namespace` over the window, from Prometheus's query API."""
    from components.serving.request_log import UNATTRIBUTED

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ComponentError(STEP, f"{url!r} is not a Prometheus address", "pass http(s)://host:port, e.g. "
                             "http://prometheus-operated.monitoring:9090")  # fmt: skip
    seconds = max(60, math.ceil((until - since).total_seconds()))
    asked = queries(namespace, model, seconds)
    counts: dict[str, dict[str, float]] = {}
    for sample in _query(url, asked["requests"], until, timeout):
        labels = sample.get("metric", {})
        side = counts.setdefault(str(labels.get("version", "")) or UNATTRIBUTED, {})
        value = _number(sample)
        side[str(labels.get("code_class", ""))] = 0.0 if math.isnan(value) else value
    p99 = {}
    for sample in _query(url, asked["p99"], until, timeout):
        value = _number(sample)
        p99[str(sample.get("metric", {}).get("version", "")) or UNATTRIBUTED] = (
            None if math.isnan(value) else value * 1e3
        )
    source = f"Prometheus at {url} over the last {seconds} s"
    figures = {
        version: VersionFigures(
            round(sum(side.values())), round(side.get("5xx", 0.0)), round(side.get("4xx", 0.0)), p99.get(version)
        )
        for version, side in counts.items()
    }
    if not figures:
        return ServingFigures(source, missing=f"Prometheus holds no {model} requests in {namespace} over the window")
    unattributed = figures.pop(UNATTRIBUTED, VersionFigures())
    return ServingFigures(source, figures, unattributed)
