"""The point-in-time join and the training and holdout sets, out of core on DuckDB (issue 33).

materialize used Feast's `get_historical_features`, which cannot be bounded: both offline stores
return the whole result as one pandas frame (`RetrievalJob.to_df`/`to_arrow`), and the DuckDB
store's plan (feast/infra/offline_stores/ibis.py `point_in_time_join`) first joins every entity
row with every feature row of its entity inside the TTL, then keeps the latest. At 10M rows the
step peaked at 14 GB. Here the same join runs as one DuckDB `ASOF JOIN` on the feature views'
own definitions, read from the Feast objects in the registry (each projection's view: its
source's path, join key, timestamp and created-timestamp fields, TTL and the projected
features), in a database file whose `memory_limit` bounds the engine and whose
`temp_directory` takes what spills; the sets are written with `COPY ... TO`, never held in
Python. Feast keeps the registry, the feature views and the online store.

Feast's semantics, kept exactly (tests/components/test_point_in_time_bounded.py compares the
result with an independent pandas `merge_asof`):
- an entity row gets, per view, the feature row of its entity with the latest event time at or
  before its own, or nulls when there is none or that row is older than the TTL (`ttl` 0 or
  unset: no limit); feature rows at the same event time are ranked by the created timestamp
  (Feast's `deduplicate`), then by their order in the file (Feast leaves that tie arbitrary);
- one output row per entity row, duplicates included.
The rows are ordered by (event time, entity, position in the data) and the latest
`holdout_fraction` of them is the holdout, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import artifacts
from components.duckdb_session import connect, literal, one_row, quote
from components.errors import ComponentError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    from feast import FeatureStore

    from components.config import MaterializeSettings

__all__ = [
    "Sets",
    "ViewJoin",
    "build_sets",
    "joined_query",
    "record",
    "sets_through_feast",
    "time_range",
    "view_joins",
    "window_counts",
]

ROW = "__row"
RANK = "__rank"


@dataclass(frozen=True)
class ViewJoin:
    """One feature view of the service, as its Feast objects define the join."""

    name: str
    path: str
    join_key: str
    """The view's join key in its source."""
    entity_column: str
    """The column of the entity rows it is matched with (the projection's join key map)."""
    timestamp: str
    created: str | None
    ttl_seconds: float
    features: tuple[str, ...]


def view_joins(store: FeatureStore, feature_service: str) -> list[ViewJoin] | None:
    """The service's views as `ViewJoin`s; None where one is not a plain file source with one
    join key and no field mapping (the caller then uses Feast's own retrieval)."""
    service = store.get_feature_service(feature_service)
    joins = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        source = view.batch_source
        path = getattr(source, "path", None)
        keys = view.entity_columns
        if source is None or not path or getattr(source, "field_mapping", None) or len(keys) != 1:
            return None
        key = keys[0].name
        ttl = view.ttl.total_seconds() if view.ttl else 0.0
        joins.append(
            ViewJoin(
                name=view.name,
                path=str(path),
                join_key=key,
                entity_column=(projection.join_key_map or {}).get(key, key),
                timestamp=source.timestamp_field,
                created=source.created_timestamp_column or None,
                ttl_seconds=ttl,
                features=tuple(field.name for field in projection.features),
            )
        )
    return joins


def _latest_per_time(view: ViewJoin, alias: str, path: str) -> str:
    """The view's rows, one per (join key, event time): the latest created, then the last written."""
    features = ", ".join(quote(feature) for feature in view.features)
    order = [f"{quote(view.created)} DESC NULLS FIRST"] if view.created else []
    order.append("file_row_number DESC")
    return (
        f"{alias} AS (SELECT {quote(view.join_key)} AS __key, {quote(view.timestamp)} AS __time, {features}"
        f" FROM read_parquet({literal(path)}, file_row_number = true)"
        f" QUALIFY row_number() OVER (PARTITION BY __key, __time ORDER BY {', '.join(order)}) = 1)"
    )


def joined_query(
    entity_source: str,
    views: Sequence[tuple[ViewJoin, str]],
    settings: MaterializeSettings,
    cutoff: datetime | None,
) -> str:
    """The SELECT of the joined rows, ranked: each view's local file in `views`."""
    timestamp, entity, label = settings.timestamp_column, settings.entity_column, settings.label_column
    wanted = [entity, timestamp, label, *settings.request_features]
    wanted += [v.entity_column for v, _ in views if v.entity_column not in wanted]
    at = f"{literal(cutoff.isoformat())}::TIMESTAMPTZ" if cutoff else ""
    waiting = f" WHERE NOT ({quote(label)} IS NULL AND {quote(timestamp)} > {at})" if cutoff else ""
    parts = [
        f"entities AS (SELECT {', '.join(quote(c) for c in wanted)}, file_row_number AS {ROW}"
        f" FROM read_parquet({literal(entity_source)}, file_row_number = true){waiting})"
    ]
    selected, joins = [], []
    for index, (view, path) in enumerate(views):
        alias = f"view{index}"
        parts.append(_latest_per_time(view, alias, path))
        joins.append(
            f" ASOF LEFT JOIN {alias} ON e.{quote(view.entity_column)} = {alias}.__key"
            f" AND e.{quote(timestamp)} >= {alias}.__time"
        )
        fresh = (
            f"{alias}.__time >= e.{quote(timestamp)} - to_microseconds({round(view.ttl_seconds * 1e6)})"
            if view.ttl_seconds
            else f"{alias}.__time IS NOT NULL"
        )
        selected += [f"CASE WHEN {fresh} THEN {alias}.{quote(f)} END AS {quote(f)}" for f in view.features]
    keys = [timestamp, entity, *settings.request_features]
    columns = ", ".join([*(f"e.{quote(c)}" for c in keys), *selected, f"e.{quote(label)}"])
    order = f"e.{quote(timestamp)}, e.{quote(entity)}, e.{ROW}"
    return (
        f"WITH {', '.join(parts)} SELECT {columns}, row_number() OVER (ORDER BY {order}) AS {RANK}"
        f" FROM entities e{''.join(joins)}"
    )


@dataclass(frozen=True)
class Sets:
    """What the training and holdout sets hold, for the summary and the lineage."""

    training_rows: int
    holdout_rows: int
    holdout_starts: str
    filled: dict[str, object]
    schemas: dict[str, dict[str, str]]


def _schema(path: Path) -> dict[str, str]:
    """The pandas dtypes a reader of the Parquet file gets (the lineage's schema form), from the
    file's schema alone: reading the table to take none of its rows held the whole training set in
    memory (8 GB at 100M rows, issue 33's first 100M run)."""
    import pyarrow.parquet as pq

    frame = pq.read_schema(path).empty_table().to_pandas() if path.stat().st_size else None
    return {str(c): str(t) for c, t in frame.dtypes.items()} if frame is not None else {}


def _fill(features: Sequence[str], nulls: dict[str, int], settings: MaterializeSettings) -> dict[str, object]:
    """Refuse nulls materialize.fill does not name (the contract's rule), report what it fills."""
    from components.data_contract import contract_error, unfilled_from_counts

    if violations := unfilled_from_counts(nulls, settings, features):
        raise contract_error("materialize", violations, where="the point-in-time join's result")
    return {f: {"value": settings.fill[f], "rows": nulls[f]} for f in features if nulls[f] and f in settings.fill}


def build_sets(
    joins: Sequence[ViewJoin],
    offline_uri: str,
    settings: MaterializeSettings,
    features: Sequence[str],
    cutoff: datetime | None,
    train_out: str,
    holdout_out: str,
) -> Sets:
    """Join the labelled events of `offline_uri` with the features of `joins` (view_joins) as of
    each event and write the train and holdout Parquet sets."""
    with contextlib.ExitStack() as stack, connect() as db:
        local = {
            uri: str(stack.enter_context(artifacts.fetched(uri))) for uri in {offline_uri, *(v.path for v in joins)}
        }
        query = joined_query(local[offline_uri], [(v, local[v.path]) for v in joins], settings, cutoff)
        db.execute(f"CREATE TABLE joined AS {query}")
        counts = ", ".join(f"count(*) FILTER (WHERE {quote(f)} IS NULL)" for f in features)
        nulls = dict(zip(features, one_row(db, f"SELECT {counts} FROM joined"), strict=True))
        filled = _fill(features, nulls, settings)
        return _write_sets(db, settings, features, train_out, holdout_out, filled)


def _write_sets(
    db: duckdb.DuckDBPyConnection,
    settings: MaterializeSettings,
    features: Sequence[str],
    train_out: str,
    holdout_out: str,
    filled: dict[str, object],
) -> Sets:
    import pandas as pd

    timestamp, entity, label = settings.timestamp_column, settings.entity_column, settings.label_column
    total = int(one_row(db, "SELECT count(*) FROM joined")[0])
    cut = int(total * (1.0 - settings.holdout_fraction))
    classes = one_row(
        db,
        f"SELECT count(DISTINCT {quote(label)}) FILTER (WHERE {RANK} <= {cut}),"
        f" count(DISTINCT {quote(label)}) FILTER (WHERE {RANK} > {cut}),"
        f" min({quote(timestamp)}) FILTER (WHERE {RANK} > {cut}) FROM joined",
    )
    if classes[0] < 2 or classes[1] < 2:
        raise ComponentError(
            "materialize",
            "the time split left one side with a single label class",
            "use more rows or a different holdout_fraction",
        )
    fills = {f: f"COALESCE({quote(f)}, {float(settings.fill[f])!r}::DOUBLE) AS {quote(f)}" for f in filled}
    columns = [quote(c) for c in (timestamp, entity, *settings.request_features)]
    columns += [fills.get(f, quote(f)) for f in features] + [quote(label)]
    schemas = {}
    for name, out, where in (("training", train_out, f"<= {cut}"), ("holdout", holdout_out, f"> {cut}")):
        with artifacts.atomic_path(out, suffix=".parquet") as tmp:
            db.execute(
                f"COPY (SELECT {', '.join(columns)} FROM joined WHERE {RANK} {where} ORDER BY {RANK})"
                f" TO {literal(str(tmp))} (FORMAT parquet)"
            )
            schemas[name] = _schema(tmp)
    return Sets(
        training_rows=cut,
        holdout_rows=total - cut,
        holdout_starts=pd.Timestamp(classes[2]).isoformat(),
        filled=filled,
        schemas=schemas,
    )


def record(uri: str, name: str, rows: int, schema: dict[str, str]) -> dict[str, Any]:
    """lineage.describe's record of a set written out of core: rows and schema from the file."""
    from components import lineage

    return {**lineage.describe(uri, None, name), "rows": rows, "schema": schema}


def sets_through_feast(
    retrieve: Callable[[FeatureStore, pd.DataFrame, str], pd.DataFrame],
    store: FeatureStore,
    entity_rows: pd.DataFrame,
    settings: MaterializeSettings,
    features: list[str],
    train_out: str,
    holdout_out: str,
) -> Sets:
    """The sets through Feast's retrieval (`retrieve`: materialize.historical_features), in memory:
    for views the DuckDB join does not read (not a plain file source, several join keys, a field
    mapping). The same rows, order and split as `build_sets`."""
    from components.data_contract import fill_missing
    from components.tabular import require_columns

    timestamp, entity, label = settings.timestamp_column, settings.entity_column, settings.label_column
    entity_df = entity_rows[[entity, timestamp, label, *settings.request_features]]
    joined = retrieve(store, entity_df.sort_values(timestamp, kind="stable"), settings.feature_service)
    require_columns("materialize", joined, features, "the historical retrieval (check the feature view's schema)")
    columns = [timestamp, entity, *settings.request_features, *features, label]
    joined = joined[columns].sort_values([timestamp, entity], kind="stable").reset_index(drop=True)
    filled = fill_missing(joined, settings, features)  # opt-in per feature: materialize.fill
    cut = int(len(joined) * (1.0 - settings.holdout_fraction))
    train, holdout = joined.iloc[:cut], joined.iloc[cut:]
    if train[label].nunique() < 2 or holdout[label].nunique() < 2:
        raise ComponentError(
            "materialize",
            "the time split left one side with a single label class",
            "use more rows or a different holdout_fraction",
        )
    artifacts.write_parquet(train_out, train)
    artifacts.write_parquet(holdout_out, holdout)
    return Sets(
        training_rows=len(train),
        holdout_rows=len(holdout),
        holdout_starts=holdout[timestamp].min().isoformat(),
        filled=filled,
        schemas={
            name: {str(c): str(t) for c, t in part.dtypes.items()}
            for name, part in (("training", train), ("holdout", holdout))
        },
    )


def window_counts(offline_uri: str, timestamp: str, entity: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Rows and distinct entities of the offline data in [start, end), counted out of core."""
    with artifacts.fetched(offline_uri) as local, connect() as db:
        rows, entities = one_row(
            db,
            f"SELECT count(*), count(DISTINCT {quote(entity)}) FROM read_parquet(?)"
            f" WHERE {quote(timestamp)} >= ? AND {quote(timestamp)} < ?",
            [str(local), start, end],
        )
    return {"online_rows_in_window": int(rows), "online_entities_written": int(entities)}


def time_range(offline_uri: str, timestamp: str) -> tuple[datetime, datetime]:
    """The earliest and latest event time of the offline data."""
    with artifacts.fetched(offline_uri) as local, connect() as db:
        first, last = one_row(
            db, f"SELECT min({quote(timestamp)}), max({quote(timestamp)}) FROM read_parquet(?)", [str(local)]
        )
    if first is None or last is None:
        raise ComponentError("materialize", f"the offline data at {offline_uri} has no event times", "check its rows")
    return first, last
