"""materialize's input, out of core (issue 33): the validated data copied into one Parquet file
in batches (its timestamps normalized as components/raw_data.py reads them), and the data
contract (components/data_contract.py) checked on that file in DuckDB.

The contract's rules and their words are data_contract's; this module evaluates them with SQL
aggregates instead of pandas, so the step's memory does not grow with the rows. The same
violations, in the same order and words, on the same data: tests/components/
test_materialize_input.py runs both on each broken input. A `.csv` file or a DVC pointer is read
whole as before (raw_data.read_recorded) and written to the same file, then checked the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from components import artifacts
from components.config import duration_seconds
from components.data_contract import Violation, unfilled_from_counts
from components.duckdb_session import connect, literal, one_row, quote
from components.errors import ComponentError

if TYPE_CHECKING:
    import duckdb

    from components.config import MaterializeSettings
    from components.lineage import DatasetRecord

__all__ = ["Input", "contract_violations", "labels_waiting", "publish", "read_validated"]


@dataclass(frozen=True)
class Input:
    """The validated data as one local Parquet file, and its lineage record."""

    path: Path
    source: DatasetRecord
    columns: tuple[str, ...]


def read_validated(step: str, dataset: str, settings: MaterializeSettings, expected: str, scratch: Path) -> Input:
    """Copy `dataset` into `scratch`/data.parquet, refusing bytes other than `expected` (validate's
    digest) as raw_data.read_recorded does."""
    import pyarrow.parquet as pq

    from components import lineage
    from components.raw_data import normalized_copy, read_recorded

    path = scratch / "data.parquet"
    what, timestamp = "validated dataset", settings.timestamp_column
    copied = None
    if not dataset.endswith(".dvc"):
        copied = normalized_copy(step, dataset, what, path, timestamp_column=timestamp, timezone=settings.timezone)
    if copied is None:  # read whole, as before: a CSV file or a DVC pointer
        frame, source = read_recorded(
            step, dataset, what, "raw", timestamp_column=timestamp, timezone=settings.timezone, expected=expected
        )
        frame.to_parquet(path, index=False)
        del frame
    else:
        digest, rows, schema = copied
        source = {**lineage.describe(dataset, None, "raw", sha256=digest), "rows": rows, "schema": schema}
        if expected and lineage.digest_word(source) != expected:
            raise ComponentError(
                step,
                f"{what} at {dataset} changed during the run: an earlier step read {expected[:19]}, this one "
                f"{lineage.digest_word(source)[:19]}",
                "something rewrote the data mid-run; write each extract to a new URI (or a lakeFS commit) and run"
                " again",
            )
    return Input(path=path, source=source, columns=tuple(pq.read_schema(path).names))


def publish(path: Path, offline: str) -> None:
    """The checked file at the offline store's location, in one step (components/artifacts.py)."""
    with artifacts.atomic_path(offline, suffix=".parquet") as tmp:
        shutil.copyfile(path, tmp)


def _count(db: duckdb.DuckDBPyConnection, source: str, condition: str) -> int:
    return int(one_row(db, f"SELECT count(*) FROM {source} WHERE {condition}")[0])


def _cutoff(db: duckdb.DuckDBPyConnection, source: str, settings: MaterializeSettings) -> pd.Timestamp | None:
    """data_contract.label_cutoff: the newest event minus materialize.label_delay."""
    if settings.label_delay is None:
        return None
    newest = one_row(db, f"SELECT max({quote(settings.timestamp_column)}) FROM {source}")[0]
    if newest is None:
        return None
    return pd.Timestamp(newest) - pd.Timedelta(seconds=duration_seconds(settings.label_delay))


def _waiting(settings: MaterializeSettings, cutoff: pd.Timestamp | None) -> str:
    """data_contract.unlabelled_recent as SQL: a null label on an event after the cut-off."""
    if cutoff is None:
        return "false"
    at = f"{literal(cutoff.isoformat())}::TIMESTAMPTZ"
    return f"({quote(settings.label_column)} IS NULL AND {quote(settings.timestamp_column)} > {at})"


def labels_waiting(path: Path, settings: MaterializeSettings) -> tuple[pd.Timestamp | None, int]:
    """The label cut-off and the rows after it still waiting for their label."""
    with connect() as db:
        source = f"read_parquet({literal(str(path))})"
        cutoff = _cutoff(db, source, settings)
        return cutoff, (_count(db, source, _waiting(settings, cutoff)) if cutoff is not None else 0)


def _examples(db: duckdb.DuckDBPyConnection, source: str, condition: str, settings: MaterializeSettings) -> str:
    """data_contract._examples: the first three rows in event-time order, by entity and time."""
    entity, when = settings.entity_column, settings.timestamp_column
    first = db.execute(
        f"SELECT {quote(entity)}, {quote(when)} FROM {source} WHERE {condition}"
        f" ORDER BY {quote(when)} NULLS FIRST, file_row_number LIMIT 3"
    ).fetchall()
    return ", ".join(f"{entity}={key!r} at {pd.Timestamp(at) if at is not None else pd.NaT}" for key, at in first)


def _label_violations(
    db: duckdb.DuckDBPyConnection, source: str, settings: MaterializeSettings, columns: set[str]
) -> list[Violation]:
    label = settings.label_column
    if label not in columns:
        return []
    cutoff = _cutoff(db, source, settings) if settings.timestamp_column in columns else None
    condition = f"{quote(label)} IS NULL AND NOT {_waiting(settings, cutoff)}"
    rows = _count(db, source, condition)
    if not rows:
        return []
    if {settings.entity_column, settings.timestamp_column} <= columns:
        examples = _examples(db, source, condition, settings)
    else:
        numbers = db.execute(f"SELECT file_row_number FROM {source} WHERE {condition} LIMIT 3").fetchall()
        examples = ", ".join(f"row {number}" for (number,) in numbers)
    if cutoff is None:
        return [Violation.of("null-label", label, rows=rows, examples=examples)]
    return [Violation.of("late-label", label, rows=rows, delay=settings.label_delay, cutoff=cutoff, examples=examples)]


def _conflicting_duplicates(
    db: duckdb.DuckDBPyConnection, source: str, settings: MaterializeSettings, columns: set[str]
) -> list[Violation]:
    """(entity, time) pairs whose rows hold more than one label (a null counting as one)."""
    entity, when, label = settings.entity_column, settings.timestamp_column, settings.label_column
    if not {entity, when, label} <= columns:
        return []
    distinct = f"count(DISTINCT {quote(label)}) + max(CASE WHEN {quote(label)} IS NULL THEN 1 ELSE 0 END)"
    pairs, key, at = one_row(
        db,
        f"SELECT count(*), first(k ORDER BY k, t NULLS LAST), first(t ORDER BY k, t NULLS LAST) FROM"
        f" (SELECT {quote(entity)} AS k, {quote(when)} AS t FROM {source} GROUP BY ALL"
        f" HAVING count(*) > 1 AND {distinct} > 1)",
    )
    if not pairs:
        return []
    example = f"{entity}={key!r} at {pd.Timestamp(at) if at is not None else pd.NaT}"
    return [
        Violation.of("conflicting-duplicates", label, pairs=int(pairs), entity=entity, timestamp=when, example=example)
    ]


def contract_violations(path: Path, settings: MaterializeSettings, features: Sequence[str]) -> list[Violation]:
    """data_contract.contract_violations on the Parquet file at `path`, evaluated in DuckDB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    columns = set(schema.names)
    found: list[Violation] = []
    required: tuple[tuple[str, str, str], ...] = (
        ("entity", settings.entity_column, "entity_column"),
        ("timestamp", settings.timestamp_column, "timestamp_column"),
        ("label", settings.label_column, "label_column"),
    )
    required += tuple(("request feature", column, "request_features") for column in settings.request_features)
    found += [Violation.of("required-column", c, kind=k, setting=s) for k, c, s in required if c not in columns]
    timestamp = settings.timestamp_column
    if timestamp in columns and not pa.types.is_timestamp(schema.field(timestamp).type):
        dtype = schema.empty_table().to_pandas()[timestamp].dtype
        found.append(Violation.of("timestamp-type", timestamp, dtype=dtype))
    with connect() as db:
        source = f"read_parquet({literal(str(path))}, file_row_number = true)"
        for kind, column in (("entity", settings.entity_column), ("timestamp", timestamp)):
            if column in columns and (nulls := _count(db, source, f"{quote(column)} IS NULL")):
                found.append(Violation.of("null-key", column, kind=kind, rows=nulls))
        found += _label_violations(db, source, settings, columns)
        found += _conflicting_duplicates(db, source, settings, columns)
        found += [
            Violation.of("missing-feature", f, service=settings.feature_service) for f in features if f not in columns
        ]
        present = [f for f in features if f in columns]
        if present:
            counts = one_row(
                db, "SELECT " + ", ".join(f"count(*) - count({quote(f)})" for f in present) + f" FROM {source}"
            )
            found += unfilled_from_counts(dict(zip(present, counts, strict=True)), settings, present)
    names = ", ".join(features) or "none"
    found += [
        Violation.of("unknown-fill", f, service=settings.feature_service, features=names)
        for f in settings.fill
        if f not in features
    ]
    return found
