"""Late outcomes: labels joined to the decision log, and the realized metrics of each served version.

Issue 32 item 3. Fraud and churn labels arrive days or weeks after the decision; `mlops outcomes ingest`
joins them to the decisions they judge and `mlops outcomes metrics` measures how each version, in each
serving role, actually performed.

- `ingest(root, labels_file, cfg)`: a Parquet or CSV file of outcomes, keyed by `decision_id` (as the
  response and the log say), or by the entity key (materialize.entity_column) and the event time
  (materialize.timestamp_column): the entity's decision nearest that time, at most
  outcomes.join_tolerance away. The label is materialize.label_column. The whole file is checked before
  anything is written, and refused (ComponentError, exit 2) for a missing key or label column, a key
  left empty, one id (or entity and time) with different labels, a label outside the objective's
  domain (binary: 0 or 1; regression: a finite number; multiclass: a class 0..k-1), naming the rows;
  an id already stored with another label is refused too. Outcomes matching no decision are counted
  and reported, not refused. An id already stored with the same label is skipped, so an ingest run
  twice counts each outcome once.
- `realized(root, model, since, until)`: per (version, serving role), the labelled decisions of the
  window (by decision time; days inclusive, or ISO times) and their metrics, computed with
  scikit-learn: binary roc_auc, pr_auc (average precision), brier, positive_rate (the labels' share
  of 1s); regression mae, rmse, mape (over labels with |y| >= 1, as evaluate computes it);
  multiclass accuracy. A metric that cannot be computed (one class only, too few rows) is None, and
  `reasons` names why. components/steps/canary_analysis.py judges a canary by these rows.

Where outcomes are stored (`outcomes_root`, the one derivation): beside the log, inside the same
tenant prefix, in a folder readers of the log skip (pyarrow's dataset discovery ignores names
starting with `_`, so `mlops audit` and `mlops decisions` never see these files):

    <log root>/_outcomes/model=<name>/version=<v>/date=<decision day>/part-<uuid>.parquet
    e.g. s3://decisions/<namespace>/_outcomes/... on the platform, $MLOPS_HOME/decisions/_outcomes/ locally

The tenant's key reads the log under `decisions/<tenant>/` and writes only here, under `_outcomes/`
(components/platform/tenant_s3.py OUTCOMES_FOLDER and tenant_grants: the log itself is the
transformer's decisions writer's, evidence the tenant cannot rewrite). Each file is written
whole or not at all: locally to a hidden name renamed into place, on S3 one object put at close.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from components.platform.realized_metrics import METRICS, MIN_ROWS, metrics_of
from components.platform.tenant_s3 import OUTCOMES_FOLDER

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from components.config import PipelineConfig

__all__ = [
    "FAMILIES",
    "GATE_MARGIN",
    "LABELLED",
    "METRICS",
    "MIN_LABELLED",
    "MIN_ROWS",
    "OUTCOMES_FOLDER",
    "PREFIX",
    "STEP",
    "ingest",
    "outcomes_root",
    "read_outcomes",
    "realized",
    "schema",
]

STEP = "outcomes"
PREFIX = "mlops_model_realized_"
LABELLED = f"{PREFIX}labelled"
GATE_MARGIN = f"{PREFIX}gate_margin"
"""The realized gate metric's distance from its threshold, signed so that below zero is worse than the gate."""
MIN_LABELLED = f"{PREFIX}min_labelled"
FAMILIES: tuple[str, ...] = tuple(
    sorted({LABELLED, GATE_MARGIN, MIN_LABELLED, *(PREFIX + m for names in METRICS.values() for m in names)})
)
"""Every family `mlops outcomes metrics --push` pushes (the ModelPerformanceDegraded rule reads them)."""
_PARTITIONS = ("model", "version", "date")
_COLUMNS = ("decision_id", "model_version", "serving_role", "decided_at", "score", "decision", "label",
            "objective", "outcome_at", "ingested_at", "source")  # fmt: skip
_SHOWN = 5


@functools.cache
def schema() -> pa.Schema:
    """One stored outcome: the decision it judges (id, version, role, time, score, decision, as logged), the
    label, the pipeline's objective, the outcome's event time (when keyed by entity and time), when it was
    ingested and from which file."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("decision_id", pa.string(), nullable=False),
            pa.field("model_version", pa.string(), nullable=False),
            pa.field("serving_role", pa.string(), nullable=False),
            pa.field("decided_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("score", pa.float64()),
            pa.field("decision", pa.int64()),
            pa.field("label", pa.float64(), nullable=False),
            pa.field("objective", pa.string(), nullable=False),
            pa.field("outcome_at", pa.timestamp("us", tz="UTC")),
            pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("source", pa.string(), nullable=False),
        ]
    )


def outcomes_root(log_root: str) -> str:
    """Where the outcomes of the decision log at `log_root` are stored: `<log root>/_outcomes/`."""
    return f"{log_root.rstrip('/')}/{OUTCOMES_FOLDER}/"


def _refuse(problem: str, fix: str) -> ComponentError:
    return ComponentError(STEP, problem, fix)


def _rows_named(index: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in list(index)[:_SHOWN])
    return f"{shown}{' and more' if len(index) > _SHOWN else ''}"


def _read_file(uri: str) -> pd.DataFrame:
    """The outcomes file (Parquet, or CSV by its suffix), local or s3://, as a DataFrame."""
    import pyarrow as pa
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    from components.serving.decision_log import open_destination

    filesystem, path = open_destination(uri)
    try:
        if uri.lower().endswith(".csv"):
            with filesystem.open_input_stream(path) as stream:
                table = csv.read_csv(stream)
        else:
            table = pq.read_table(path, filesystem=filesystem)
    except FileNotFoundError as error:
        raise _refuse(f"no outcomes file at {uri}", "pass the path of a Parquet or CSV file of outcomes") from error
    except pa.ArrowInvalid as error:
        raise _refuse(f"{uri} is neither Parquet nor CSV: {error}", "write the outcomes as Parquet, or CSV") from error
    return table.to_pandas()


def _labels(frame: pd.DataFrame, column: str, cfg: PipelineConfig) -> pd.Series:
    """The label column as floats, refused (naming rows) where a value is outside the objective's domain."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    objective = cfg.train.objective
    finite = np.isfinite(values.to_numpy())
    if objective == "binary":
        bad, domain = ~(values.isin([0.0, 1.0])).to_numpy(), "0 or 1"
    elif objective == "multiclass":
        k = cfg.train.num_classes
        whole = finite & (values.fillna(0.5) % 1 == 0).to_numpy() & (values.fillna(-1) >= 0).to_numpy()
        bad = ~(whole & ((values < k).to_numpy() if k else True))
        domain = f"a class 0..{k - 1}" if k else "a class number 0, 1, 2, ..."
    else:
        bad, domain = ~finite, "a finite number"
    if bad.any():
        rows = frame.index[bad]
        values_shown = _rows_named([frame[column].iloc[i] for i in rows[:_SHOWN]])
        raise _refuse(
            f"{int(bad.sum())} labels in column '{column}' are outside the {objective} label's domain ({domain}):"
            f" rows {_rows_named(list(rows))} (from 0; values {values_shown})",
            f"correct or remove those rows; a {objective} label is {domain}",
        )
    return values


def _conflicts(frame: pd.DataFrame, key: list[str], what: str) -> None:
    """Refuse one key with different labels; say which keys."""
    spread = frame.groupby(key, sort=True)["label"].nunique()
    clashing = spread[spread > 1]
    if len(clashing):
        named = [k if isinstance(k, str) else "@".join(str(p) for p in k) for k in clashing.index]
        raise _refuse(
            f"{len(clashing)} {what} carry different labels in the outcomes: {_rows_named(named)}",
            "keep one label per decision: correct the file (an outcome is final once ingested)",
        )


def _keyed(frame: pd.DataFrame, cfg: PipelineConfig, source: str) -> tuple[pd.DataFrame, str]:
    """The file as (key columns, label), and how it is keyed: `id` or `entity`; refusals first."""
    import pandas as pd

    from components.raw_data import utc_microseconds

    m = cfg.materialize
    if m.label_column not in frame.columns:
        raise _refuse(f"{source} has no label column '{m.label_column}' (columns: {list(frame.columns)})",
                      f"name the outcome column {m.label_column}, as materialize.label_column does")  # fmt: skip
    if "decision_id" in frame.columns:
        how, key = "id", ["decision_id"]
    elif m.entity_column in frame.columns and m.timestamp_column in frame.columns:
        how, key = "entity", [m.entity_column, m.timestamp_column]
    else:
        raise _refuse(
            f"{source} has no key column: neither 'decision_id' nor both '{m.entity_column}' and"
            f" '{m.timestamp_column}' (columns: {list(frame.columns)})",
            f"key each outcome by decision_id (as the response and `mlops decisions` show it), or by"
            f" {m.entity_column} and {m.timestamp_column}",
        )
    empty = frame[key].isna().any(axis=1).to_numpy()
    if empty.any():
        rows = _rows_named(list(frame.index[empty]))
        raise _refuse(f"{int(empty.sum())} outcomes have no {' or '.join(key)}: rows {rows} (from 0)",
                      "fill in the key of every row, or remove those rows")  # fmt: skip
    labels = _labels(frame, m.label_column, cfg)
    out = pd.DataFrame({"label": labels})
    if how == "id":
        out["decision_id"] = frame["decision_id"].astype(str)
        out["outcome_at"] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    else:
        values = frame[m.entity_column]
        whole = pd.api.types.is_float_dtype(values) and bool((values % 1 == 0).all())
        out["entity"] = (values.astype("int64") if whole else values).astype(str)
        csv = source.lower().endswith(".csv")
        out["outcome_at"] = utc_microseconds(
            frame[m.timestamp_column], column=m.timestamp_column, timezone=m.timezone, step=STEP, csv=csv
        )
    _conflicts(out, ["decision_id"] if how == "id" else ["entity", "outcome_at"], "keys")
    return out.drop_duplicates(), how


_DECIDED = ["decision_id", "model_version", "serving_role", "decided_at", "score", "decision", "entity_id"]


def _decisions_by_id(root: str, model: str, ids: list[str]) -> pd.DataFrame:
    """The model's logged decisions among `ids`: the model's files (pruned by its partition, each of a schema
    version this reader knows), read for the joined columns with the ids as a filter."""
    import pyarrow.dataset as ds

    from components.platform.decisions import open_log
    from components.serving.decision_record import UnknownSchemaVersion, check_schema

    dataset = open_log(root)
    fragments = list(dataset.get_fragments(filter=ds.field("model") == model))
    try:
        for fragment in fragments:
            check_schema(fragment.physical_schema, fragment.path)
    except UnknownSchemaVersion as error:
        raise _refuse(str(error), "upgrade private-mlops to a release that reads that decision schema") from error
    chosen = ds.FileSystemDataset(fragments, dataset.schema, ds.ParquetFileFormat(), dataset.filesystem)
    return chosen.to_table(columns=_DECIDED, filter=ds.field("decision_id").isin(ids)).to_pandas()


def _decisions_near(root: str, model: str, outcomes: pd.DataFrame, tolerance: dt.timedelta) -> pd.DataFrame:
    """Each outcome's decision: the entity's decision nearest its event time, within `tolerance`."""
    import pandas as pd

    from components.platform.decisions import between

    first = (outcomes["outcome_at"].min() - tolerance).date().isoformat()
    last = (outcomes["outcome_at"].max() + tolerance).date().isoformat()
    logged = between(root, model, first, last).select(_DECIDED).to_pandas()
    logged = logged[logged["entity_id"].notna()].sort_values("decided_at")
    logged["decided_at"] = logged["decided_at"].astype("datetime64[us, UTC]")
    ordered = outcomes.sort_values("outcome_at").reset_index(drop=True)
    joined = pd.merge_asof(ordered, logged, left_on="outcome_at", right_on="decided_at", left_by="entity",
                           right_by="entity_id", direction="nearest", tolerance=pd.Timedelta(tolerance))  # fmt: skip
    return joined[joined["decision_id"].notna()]


def _open_outcomes(root: str) -> Any:
    """The stored outcomes of the log at `root` as a hive dataset, or None when nothing was ingested."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from components.platform.decisions import open_log
    from components.serving.decision_log import open_destination

    where = outcomes_root(root)
    filesystem, path = open_destination(where)
    partitioning = ds.partitioning(pa.schema([(name, pa.string()) for name in _PARTITIONS]), flavor="hive")
    stored = pa.schema([*schema(), *(pa.field(name, pa.string()) for name in _PARTITIONS)])
    try:
        return ds.dataset(path, schema=stored, filesystem=filesystem, format="parquet", partitioning=partitioning)
    except FileNotFoundError:
        return None
    except OSError:
        open_log(root)  # the store's own answer, as the log's readers classify it (refused, missing, down)
        raise


def read_outcomes(root: str, model: str) -> pd.DataFrame:
    """The model's stored outcomes, one row per decision (the last ingested where files repeat one)."""
    import pyarrow.dataset as ds

    dataset = _open_outcomes(root)
    columns = [*_COLUMNS, "version", "date"]
    if dataset is None:
        return schema().empty_table().to_pandas().assign(version=[], date=[])[columns]
    frame = dataset.to_table(columns=columns, filter=ds.field("model") == model).to_pandas()
    return frame.sort_values("ingested_at").drop_duplicates("decision_id", keep="last").reset_index(drop=True)


def _against_stored(joined: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The joined outcomes not stored yet; refused where a stored one has another label."""
    before = stored.set_index("decision_id")["label"]
    known = joined["decision_id"].isin(before.index)
    differ = known & (joined["label"].to_numpy() != before.reindex(joined["decision_id"]).to_numpy())
    if differ.any():
        ids = list(joined.loc[differ, "decision_id"])
        raise _refuse(
            f"{len(ids)} decisions already have a different stored outcome: {_rows_named(ids)}",
            "an ingested outcome is final: remove those rows (or correct them, if the file is wrong)",
        )
    return joined[~known]


def _write(root: str, model: str, rows: pd.DataFrame) -> list[str]:
    """One Parquet file per (version, day), each put whole (a hidden name renamed, or one S3 object)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.serving.decision_log import open_destination

    filesystem, base = open_destination(outcomes_root(root))
    local = not root.startswith("s3://")
    written = []
    for (version, day), part in rows.groupby(["model_version", "date"], sort=True):
        if not (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", model) and str(version).isdigit()
                and re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(day))):  # fmt: skip
            raise _refuse(f"model {model!r}, version {version!r}, day {day!r} do not make an outcomes folder",
                          "check the decision log: it names models by name, versions by number")  # fmt: skip
        table = pa.Table.from_pandas(part[list(_COLUMNS)], schema=schema(), preserve_index=False)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        folder = f"{base}/model={model}/version={version}/date={day}"
        key = f"{folder}/part-{uuid.uuid4().hex}.parquet"
        if local:
            filesystem.create_dir(folder, recursive=True)
            partial = f"{folder}/.partial-{uuid.uuid4().hex}"  # hidden from readers until renamed
            with filesystem.open_output_stream(partial) as stream:
                stream.write(buffer.getvalue())
            filesystem.move(partial, key)
        else:
            with filesystem.open_output_stream(key) as stream:  # the object appears whole at close
                stream.write(buffer.getvalue())
        written.append(key)
    return written


def _unmatched(outcomes: pd.DataFrame, joined: pd.DataFrame, how: str) -> list[str]:
    """The keys of the outcomes that joined no decision: `decision_id`, or `entity@time`."""
    key = ["decision_id"] if how == "id" else ["entity", "outcome_at"]
    found = set(joined[key].itertuples(index=False, name=None))
    missing = [k for k in outcomes[key].itertuples(index=False, name=None) if k not in found]
    return ["@".join(p.isoformat() if hasattr(p, "isoformat") else str(p) for p in k) for k in missing]


def _stored_safely(root: str, model: str, rows: pd.DataFrame) -> list[str]:
    """_write, a store's refusal permanent and anything else it answers (or not) transient. A failure
    midway leaves whole files only: the next ingest of the same file stores the rest, skipping those."""
    from components.errors import TransientError

    try:
        return _write(root, model, rows)
    except OSError as error:
        text, where = str(error), outcomes_root(root)
        if any(mark in text for mark in ("ACCESS_DENIED", "AccessDenied", "HTTP status 403")):
            fix = f"use the tenant's key: it writes decisions/<tenant>/{OUTCOMES_FOLDER}/, beside the log"
            raise _refuse(f"the store refused writing the outcomes to {where}: {text}", fix) from error
        fix = "check that the object store is up, then ingest the same file again"
        raise TransientError(STEP, f"the outcomes could not be written to {where}: {text}", fix) from error


def ingest(root: str, labels_file: str, cfg: PipelineConfig, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Join `labels_file`'s outcomes to the decision log at `root` and store the new ones beside it.

    Every refusal is raised before anything is written; a summary of what was joined, skipped as
    already stored, and matched to no decision comes back."""
    import pandas as pd

    from components.config import duration_seconds

    model = cfg.register_.model_name
    frame = _read_file(labels_file)
    outcomes, how = _keyed(frame.reset_index(drop=True), cfg, labels_file)
    if how == "id":
        logged = _decisions_by_id(root, model, sorted(set(outcomes["decision_id"])))
        joined = outcomes.merge(logged, on="decision_id", how="inner")
    else:
        tolerance = dt.timedelta(seconds=duration_seconds(cfg.outcomes.join_tolerance))
        joined = _decisions_near(root, model, outcomes, tolerance)
    joined = joined.reset_index(drop=True)
    unmatched = _unmatched(outcomes, joined, how)
    _conflicts(joined, ["decision_id"], "decisions")
    joined = joined.drop_duplicates("decision_id")
    fresh = _against_stored(joined, read_outcomes(root, model))
    at = pd.Timestamp(now or dt.datetime.now(dt.UTC)).tz_convert("UTC")
    fresh = fresh.assign(
        objective=cfg.train.objective,
        ingested_at=at,
        source=labels_file,
        date=pd.to_datetime(fresh["decided_at"]).dt.strftime("%Y-%m-%d"),
        decision=fresh["decision"].astype("Int64"),
    )
    written = _stored_safely(root, model, fresh) if len(fresh) else []
    return {
        "model": model,
        "log": root,
        "stored_in": outcomes_root(root),
        "keyed_by": "decision_id" if how == "id" else f"{cfg.materialize.entity_column} and event time",
        "outcomes": len(outcomes),
        "joined": len(joined),
        "stored": len(fresh),
        "already_stored": len(joined) - len(fresh),
        "unmatched": len(unmatched),
        "unmatched_examples": unmatched[:_SHOWN],
        "files": written,
    }


def _window(since: str, until: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC: a day names the whole day (until inclusive), an ISO time itself."""

    def parse(value: str, flag: str, end: bool) -> dt.datetime:
        try:
            if len(value) == 10:
                day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
                return day + dt.timedelta(days=1) if end else day
            moment = dt.datetime.fromisoformat(value)
        except ValueError as error:
            raise _refuse(f"{flag} {value!r} is neither a day nor an ISO time",
                          f"write {flag} YYYY-MM-DD or 2026-12-01T08:00:00+00:00") from error  # fmt: skip
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    start, end = parse(since, "--since", False), parse(until, "--until", True)
    if end <= start:
        raise _refuse(f"--until {until} is not after --since {since}", "swap them")
    return start, end


def realized(root: str, model: str, since: str, until: str) -> list[dict[str, Any]]:
    """Per (version, serving role): the labelled decisions made from `since` to `until` and their realized
    metrics (None with a reason where one cannot be computed); [] when none is labelled."""
    import pandas as pd

    start, end = _window(since, until)
    frame = read_outcomes(root, model)
    decided = pd.to_datetime(frame["decided_at"], utc=True)
    frame = frame[(decided >= start) & (decided < end)]
    rows = []
    for (version, role), group in frame.groupby(["model_version", "serving_role"], sort=False):
        objective = str(group["objective"].iloc[-1])
        computed = metrics_of(group, objective)
        row: dict[str, Any] = {"model": model, "version": int(version) if str(version).isdigit() else version,
                               "role": role, "objective": objective, "labelled": len(group)}  # fmt: skip
        row |= computed["metrics"]
        row["reasons"] = computed["reasons"]
        rows.append(row)
    return sorted(rows, key=lambda r: (str(r["version"]).zfill(12), r["role"]))
