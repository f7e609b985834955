"""The decision log's read side, and where the log lives: what `mlops audit` and `mlops decisions` read.

Issue 32 item 2. The transformer writes the log (components/serving/decision_log.py) in the layout of
components/serving/decision_record.py: hive partitions `model=<m>/version=<v>/date=<YYYY-MM-DD>/` under a
root, one Parquet file per flush. This module opens that root as a `pyarrow.dataset` and answers two
questions without reading every file's every column:

- `find(root, decision_id)`: one decision. Its id (`<request id>/<row>`) names no partition, so every
  file is scanned, but only its `request_id` and `row` columns, filtered (row groups whose statistics
  exclude the id are skipped); the whole record is then read from the one file that holds it.
- `between(root, model, since, until, version=...)`: a model's decisions over days: the model, version
  and date partitions prune the files by path before any is opened, then `decided_at` is filtered.

Every file a question reads is checked against the schema version this reader knows
(decision_record.check_schema): a file written by a newer schema is refused, naming the upgrade.

Where the log is (`decision_log_root`, the one derivation the transformer's local serve uses too):
`--log` if given, else MLOPS_DECISION_LOG_URI (what the cluster's transformer is given), else under the
platform profile the tenant's prefix of the decisions bucket, `s3://decisions/<namespace>/` (the
namespace from MLOPS_NAMESPACE, else the tenant's own prefix of the platform's buckets, as `mlops tenant
env` and the namespace's ConfigMap set MLOPS_SERVING_ROOT=s3://models/<tenant>), else `$MLOPS_HOME/decisions/`.
A reader that knows the pipeline passes the namespace it serves in (promote.namespace), the fallback
`mlops serve` logs by on a platform profile that names no tenant; one that knows only a decision id
(`mlops audit`) gets each installed pipeline's root there (`decision_log_roots`) and searches them.
S3 is reached through pyarrow's client with AWS_ENDPOINT_URL/MLFLOW_S3_ENDPOINT_URL and the tenant's
keys, as the transformer writes (decision_log.open_destination).

Imports at module level are the standard library and the errors only: the transformer's environment
can import `decision_log_root` without pandas or the training stack.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError, TransientError
from components.serving.decision_record import NAMESPACE_VARIABLE
from components.serving.decision_record import URI_VARIABLE as LOG_URI_VARIABLE

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = [
    "LOG_URI_VARIABLE",
    "NAMESPACE_VARIABLE",
    "STEP",
    "TOLERANCE",
    "NoDecisionLog",
    "Rescored",
    "between",
    "decision_log_root",
    "decision_log_roots",
    "find",
    "open_log",
    "rescore",
    "s3_failure",
    "summary",
]

STEP = "audit"
TOLERANCE = 1e-5
"""The absolute difference a re-score may show and still reproduce the logged score: the served model
scores in FP32 (Triton's input tensor; FIL's and the python backend's arithmetic), the re-score in the
model kind's own library, so the last float32 digits may differ; a different model or feature vector
moves a score by far more."""


def _tenant_of(settings: Any) -> str:
    """The tenant's prefix of the platform's buckets, from the settings that carry one (each tenant's
    keys are scoped to `<bucket>/<tenant>/`: components/platform/buckets.py)."""
    for uri in (settings.serving_root, settings.mlflow_artifact_root, settings.offline_store_uri):
        if uri.startswith("s3://"):
            parts = uri.removeprefix("s3://").strip("/").split("/")
            if len(parts) > 1 and parts[1]:
                return str(parts[1])
    return ""


def decision_log_root(
    explicit: str | None = None, env: Mapping[str, str] | None = None, serving_namespace: str | None = None
) -> str:
    """Where the decision log is: `explicit` (a reader's --log), else MLOPS_DECISION_LOG_URI, else the
    tenant's `s3://decisions/<namespace>/` under the platform profile, else `$MLOPS_HOME/decisions/`.
    Under the platform profile the namespace is MLOPS_NAMESPACE's, else the tenant's the bucket
    prefixes name, else `serving_namespace`: a caller that knows the pipeline passes the namespace it
    serves in (promote.namespace), where `mlops serve` logs on a profile that names no tenant. With
    none of them it is refused, never guessed."""
    from components.environment import mlops_home
    from components.platform.settings import from_environment
    from components.serving.decision_record import BUCKET, prefix

    source = os.environ if env is None else env
    if explicit:
        return explicit
    if source.get(LOG_URI_VARIABLE):
        return source[LOG_URI_VARIABLE]
    settings = from_environment(source)
    if not settings.is_platform:
        home = Path(source["MLOPS_HOME"]).resolve() if source.get("MLOPS_HOME") else mlops_home()
        return f"{(home / 'decisions').as_posix()}/"
    namespace = source.get(NAMESPACE_VARIABLE) or _tenant_of(settings) or serving_namespace
    if not namespace:
        raise ComponentError(
            STEP,
            f"the platform profile keeps the decision log in s3://{BUCKET}/<namespace>/, and neither"
            f" {NAMESPACE_VARIABLE} nor the platform's bucket prefixes (MLOPS_SERVING_ROOT) name the namespace",
            f"set {NAMESPACE_VARIABLE} to the namespace the model serves in (`mlops tenant env` sets its prefixes),"
            f" or pass --log s3://{BUCKET}/<namespace>/",
        )
    try:
        return f"s3://{BUCKET}/{prefix(namespace)}"
    except ValueError as error:
        raise ComponentError(STEP, f"{NAMESPACE_VARIABLE}={namespace!r}: {error}", "name one namespace") from error


def decision_log_roots(
    explicit: str | None = None,
    env: Mapping[str, str] | None = None,
    serving_namespaces: Callable[[], Iterable[str]] = tuple,
) -> list[str]:
    """Where a reader that knows no pipeline looks (`mlops audit <id>`): decision_log_root's one root
    where the settings name it; where only a serving namespace would (a platform profile that names no
    tenant), the root of each of `serving_namespaces()` (the installed pipelines' promote.namespace,
    asked only then), once each. With none of them, decision_log_root's refusal."""
    try:
        return [decision_log_root(explicit, env)]
    except ComponentError:
        namespaces = sorted(set(serving_namespaces()))
        if not namespaces:
            raise
        # a refusal a serving namespace does not cure (a malformed MLOPS_NAMESPACE) is raised again here
        return [decision_log_root(explicit, env, serving_namespace=namespace) for namespace in namespaces]


class NoDecisionLog(ComponentError):
    """Nothing has been logged at a root (open_log): a search over several roots passes it by."""


def s3_failure(error: OSError, root: str) -> ComponentError:
    """A pyarrow S3 error as the platform's classes: refused keys or a missing bucket are permanent,
    anything else (no answer, a 5xx, a timeout) transient."""
    text = str(error)
    refused = ("ACCESS_DENIED", "AccessDenied", "HTTP status 403", "InvalidAccessKeyId", "SignatureDoesNotMatch")
    if any(mark in text for mark in refused):  # not a bare "403": an endpoint's port may contain it
        return ComponentError(
            STEP,
            f"S3 refused the credentials for the decision log at {root}: {text}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the tenant's key (it covers decisions/<tenant>/ only)",
        )
    if "NoSuchBucket" in text or "NO_SUCH_BUCKET" in text:
        return ComponentError(STEP, f"no bucket for the decision log at {root}", "run `mlops buckets ensure`")
    return TransientError(
        STEP,
        f"the decision log at {root} could not be read: {text}",
        "check that the object store is up and AWS_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL) points at it",
    )


def open_log(root: str) -> ds.Dataset:
    """The log at `root` as a hive-partitioned dataset (model, version, date as strings); a missing
    local folder is a permanent error naming it, an unreachable store a transient one."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs

    from components.serving.decision_log import open_destination
    from components.serving.decision_record import PARTITIONS, SCHEMA

    filesystem, path = open_destination(root)
    partitioning = ds.partitioning(pa.schema([(name, pa.string()) for name in PARTITIONS]), flavor="hive")
    schema = pa.schema([*SCHEMA, *(pa.field(name, pa.string()) for name in PARTITIONS)], metadata=SCHEMA.metadata)
    try:
        if root.startswith("s3://"):
            # Listed, never HEADed: a tenant's key reads `decisions/<t>/*`, and the HEAD of `<t>` itself,
            # which opening a path starts with, is outside that and refused (S3 403 on SeaweedFS and MinIO)
            selector = fs.FileSelector(path, recursive=True)
            options = ds.FileSystemFactoryOptions(partitioning=partitioning, selector_ignore_prefixes=[".", "_"])
            return ds.FileSystemDatasetFactory(filesystem, selector, ds.ParquetFileFormat(), options).finish(schema)
        return ds.dataset(path, schema=schema, filesystem=filesystem, format="parquet", partitioning=partitioning)
    except FileNotFoundError as error:
        raise NoDecisionLog(
            STEP,
            f"no decision log at {root}: nothing has been logged there",
            "check --log (or MLOPS_DECISION_LOG_URI, MLOPS_NAMESPACE); `mlops serve --with-features` logs locally",
        ) from error
    except OSError as error:
        if root.startswith("s3://"):
            raise s3_failure(error, root) from error
        raise


def _checked(dataset: ds.Dataset, root: str, partitions: ds.Expression | None = None) -> list[ds.Fragment]:
    """The files a question reads (after partition pruning), each of a schema version this reader knows."""
    import pyarrow as pa

    from components.serving.decision_record import SCHEMA_VERSION, UnknownSchemaVersion, check_schema

    try:
        fragments = list(dataset.get_fragments(filter=partitions))
        for fragment in fragments:
            check_schema(fragment.physical_schema, fragment.path)
    except UnknownSchemaVersion as error:
        raise ComponentError(
            STEP,
            str(error),
            f"upgrade private-mlops (pip install -U private-mlops) to a release that reads that schema; this one"
            f" reads decision schemas up to {SCHEMA_VERSION}",
        ) from error
    except OSError as error:
        if root.startswith("s3://"):
            raise s3_failure(error, root) from error
        raise
    except pa.ArrowInvalid as error:
        raise ComponentError(
            STEP,
            f"a file in the decision log at {root} is not a Parquet file: {error}",
            "move it out of the log's folders (only the transformer writes there)",
        ) from error
    return fragments


def find(root: str, decision: str) -> dict[str, Any] | None:
    """The record of one decision (`<request id>/<row>`), or None when the log holds none; a malformed
    id is a permanent error naming the expected form."""
    import pyarrow.dataset as ds

    from components.serving.decision_record import split_decision_id

    try:
        request_id, row = split_decision_id(decision)
    except ValueError as error:
        raise ComponentError(STEP, str(error), "pass the id the response or `mlops decisions` shows") from error
    dataset = open_log(root)
    fragments = _checked(dataset, root)
    wanted = (ds.field("request_id") == request_id) & (ds.field("row") == row)
    # pass 1: two columns of every file, filtered; pass 2: the whole row from the file that holds it
    keys = ds.FileSystemDataset(fragments, dataset.schema, ds.ParquetFileFormat(), dataset.filesystem)
    hits = keys.to_table(columns=["__filename"], filter=wanted).column("__filename").to_pylist()
    if not hits:
        return None
    holder = next(f for f in fragments if f.path == hits[0])
    table = holder.to_table(schema=dataset.schema, filter=wanted)
    return dict(table.slice(0, 1).to_pylist()[0])


def _day(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise ComponentError(STEP, f"{flag} {value!r} is not a date", f"write {flag} YYYY-MM-DD") from error


def between(root: str, model: str, since: str, until: str, *, version: str | None = None) -> pa.Table:
    """A model's decisions from `since` to `until` (days, inclusive, UTC), in time order: the model,
    version and date partitions prune the files by path, then `decided_at` is filtered."""
    import pyarrow.dataset as ds

    first, last = _day(since, "--since"), _day(until, "--until")
    if last < first:
        raise ComponentError(STEP, f"--until {until} is before --since {since}", "swap them")
    partitions = (
        (ds.field("model") == model) & (ds.field("date") >= first.isoformat()) & (ds.field("date") <= last.isoformat())
    )
    if version is not None:
        partitions &= ds.field("version") == str(version)
    dataset = open_log(root)
    fragments = _checked(dataset, root, partitions)
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    chosen = ds.FileSystemDataset(fragments, dataset.schema, ds.ParquetFileFormat(), dataset.filesystem)
    table = chosen.to_table(filter=(ds.field("decided_at") >= start) & (ds.field("decided_at") < end))
    return table.sort_by([("decided_at", "ascending"), ("request_id", "ascending"), ("row", "ascending")])


def summary(table: pa.Table) -> pd.DataFrame:
    """Per version and serving role: decisions, positive rate (binary: decision 1 of those with a
    threshold; NaN otherwise), mean score, the unknown-entity share, the first and the last time."""
    frame = table.select(["model_version", "serving_role", "score", "threshold", "decision", "unknown_entity",
                          "decided_at"]).to_pandas()  # fmt: skip
    frame["positive"] = frame["decision"].where(frame["threshold"].notna()).astype("float64")
    grouped = frame.groupby(["model_version", "serving_role"], sort=True)
    result = grouped.agg(
        decisions=("score", "size"),
        positive_rate=("positive", "mean"),
        mean_score=("score", "mean"),
        unknown_share=("unknown_entity", "mean"),
        first=("decided_at", "min"),
        last=("decided_at", "max"),
    )
    return result.reset_index()


@dataclass(frozen=True)
class Rescored:
    """The logged features scored again with the registered artifact."""

    kind: str
    logged: float | None
    rescored: float
    class_scores: list[float] | None
    difference: float
    """|rescored - logged|; multiclass: the largest over the class probabilities; inf when nothing was logged."""
    tolerance: float

    @property
    def reproduced(self) -> bool:
        return self.difference <= self.tolerance


def rescore(
    record: Mapping[str, Any],
    registration: Mapping[str, Any],
    model_bytes: bytes,
    *,
    tolerance: float = TOLERANCE,
) -> Rescored:
    """Score the record's feature vector (reordered into the registration's feature order; a null value
    as NaN) with the registered artifact, loaded by the model kind that reads its format
    (components/model_kinds.py), so a team's kind re-scores as the built-in ones do."""
    import tempfile

    import numpy as np

    from components.model_kinds import kind_of_format

    names: Sequence[str] = record["feature_names"]
    values = dict(zip(names, record["feature_values"], strict=True))
    order = list(registration["features"])
    if missing := [name for name in order if name not in values]:
        raise ComponentError(
            STEP,
            f"the decision logged no value for {missing} of the model's features {order}",
            "the log was written by a transformer of another model's features: check the model and version",
        )
    vector = np.asarray([[np.nan if values[n] is None else values[n] for n in order]], dtype=np.float32)
    kind = kind_of_format(registration["model_format"])
    with tempfile.TemporaryDirectory(prefix="mlops-audit-") as tmp:
        path = Path(tmp) / kind.model_file
        path.write_bytes(model_bytes)
        predicted = np.asarray(kind.predict(kind.load(path), vector), dtype=np.float64)
    logged = record.get("score")
    if predicted.ndim == 2:  # multiclass: k probabilities; the score is the chosen class's
        probabilities = [float(p) for p in predicted[0]]
        earlier = record.get("class_scores")
        difference = (
            max(abs(a - b) for a, b in zip(probabilities, earlier, strict=True))
            if earlier is not None and len(earlier) == len(probabilities)
            else float("inf")
        )
        chosen = max(range(len(probabilities)), key=lambda k: (probabilities[k], -k))
        return Rescored(kind.name, logged, probabilities[chosen], probabilities, difference, tolerance)
    value = float(predicted.reshape(-1)[0])
    difference = float("inf") if logged is None else abs(value - float(logged))
    return Rescored(kind.name, logged, value, None, difference, tolerance)
