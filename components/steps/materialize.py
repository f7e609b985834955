"""materialize: publish validated data to Feast, build the training sets, fill the online store.

Feast holds the one definition of each feature, used both for training (point-in-time joins
on the offline store) and for serving (the online store), so the two cannot drift apart. The
step:
1. writes the validated dataset to the offline store location and applies the pipeline's
   feature repo (the same objects `feast apply` would register);
2. builds the training set: each labelled event joined with feature values as of its own
   timestamp, never later (no label leakage), then splits it by time into train and holdout
   (the holdout is the most recent slice, as in production). The join is Feast's point-in-time
   join on the registry's feature views, run out of core in DuckDB (components/steps/
   point_in_time.py says why not `get_historical_features`, which is kept for views the DuckDB
   join does not read);
3. materializes into the online store from the last watermark (the first run backfills from
   the data's start; later runs only move the watermark forward), in bounded batches
   (components/platform/online_writer.py).

From the point-in-time join on, nothing is held in a pandas frame: DuckDB reads the offline
store's Parquet under a memory limit, spilling to disk (issue 33).

With `materialize.label_delay`, events after the label cut-off (the data's newest event minus
the delay) may still wait for their label: they go to the offline and online stores with the
rest, and are left out of the training and holdout sets; the summary and lineage count them.

The offline store outlives the step: the validated data is written once per run to
<offline root>/<project>/<run id>/ (s3://feast-offline/<tenant>/... on the platform), and the
registry's source points there, so `mlops materialize --rebuild` works from any fresh process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from components import artifacts
from components.config import MaterializeSettings
from components.data_contract import contract_error, unlabelled_recent
from components.environment import mlops_home
from components.errors import ComponentError
from components.platform import s3_filesystem, services
from components.platform.feature_definitions import SOURCE_URI_VARIABLE, TIMESTAMP_FIELD_VARIABLE
from components.ray_settings import RaySettings
from components.steps import materialize_input, materialize_ray, point_in_time

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

__all__ = [
    "HISTORICAL_CHUNK_ROWS",
    "STEP",
    "apply_repo",
    "embedded_store_config",
    "feature_service_definition",
    "historical_features",
    "materialize",
    "materialize_online",
    "materialize_online_offline",
    "offline_location",
    "online_features",
    "open_store",
    "rebuild_online",
    "repo_definitions",
    "service_features",
    "store_directory",
]

STEP = "materialize"
DEFAULT_TIMESTAMP: str = MaterializeSettings.model_fields["timestamp_column"].default
HISTORICAL_CHUNK_ROWS = 100_000


def embedded_store_config(store_dir: Path, project: str) -> dict[str, Any]:
    """Laptop defaults: DuckDB offline store, sqlite online store, file registry, all in store_dir.

    DuckDB runs Feast's point-in-time join 4x faster than the file (Dask) store on 1M rows, with
    the same training set (benchmarks/bench.py, tests/components/test_point_in_time.py). The
    platform keeps the file store for s3:// sources: DuckDB reads S3 only through its httpfs
    extension, which it downloads at run time, and a private cluster's pods cannot."""
    offline_root = services.offline_root(STEP)
    return {
        "project": project,
        "provider": "local",
        "registry": str(store_dir / "registry.db"),
        "online_store": {"type": "sqlite", "path": str(store_dir / "online.db")},
        "offline_store": {"type": "file" if offline_root.startswith("s3://") else "duckdb"},
        "entity_key_serialization_version": 3,
    }


def store_directory(project: str, store_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of feature_store.yaml: the embedded stores themselves on a laptop; on the
    platform only that file (every store is a service), so any scratch folder will do."""
    return Path(store_dir) if store_dir else mlops_home() / "feast" / project


def open_store(
    project: str,
    store_dir: str | os.PathLike[str] | None = None,
    store_config: dict[str, Any] | None = None,
    ray: RaySettings | None = None,
) -> Any:
    """Write feature_store.yaml (so the `feast` CLI works in that folder too) and open the store;
    with `ray`, on Feast's Ray offline store and compute engine (components/steps/materialize_ray.py)."""
    from feast import FeatureStore

    s3_filesystem.register()
    directory = store_directory(project, store_dir)
    directory.mkdir(parents=True, exist_ok=True)
    config = store_config or services.feast_store_config(project) or embedded_store_config(directory, project)
    config = materialize_ray.engine_config(config, ray) if ray is not None else config
    artifacts.write_bytes(directory / "feature_store.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return FeatureStore(repo_path=str(directory))


def apply_repo(
    store: FeatureStore,
    feature_repo: str | os.PathLike[str],
    source_uri: str,
    timestamp_field: str = DEFAULT_TIMESTAMP,
) -> list[str]:
    """Register the repo's objects exactly as `feast apply` parses them; returns their names."""
    objects = repo_definitions(feature_repo, source_uri, timestamp_field)
    store.apply(objects)
    return [obj.name for obj in objects if not obj.name.startswith("__")]


def repo_definitions(
    feature_repo: str | os.PathLike[str], source_uri: str, timestamp_field: str = DEFAULT_TIMESTAMP
) -> list[Any]:
    """The repo's entities, sources, feature views and services, as `feast apply` parses them,
    with the published source at `source_uri` and its event time in `timestamp_field`
    (materialize.timestamp_column); nothing is registered."""
    from feast.repo_operations import parse_repo

    repo_path = Path(feature_repo)
    if not repo_path.is_dir() or not any(repo_path.glob("*.py")):
        raise ComponentError(
            STEP,
            f"feature repo {repo_path} has no Python definitions",
            "pass the pipeline's feature_repo folder (entities, sources, feature views)",
        )
    os.environ[SOURCE_URI_VARIABLE] = source_uri
    os.environ[TIMESTAMP_FIELD_VARIABLE] = timestamp_field
    # parse_repo imports the repo's modules; a module imported earlier in this process would
    # keep the source URI of that earlier call. Forget them so the definitions are read anew.
    root = repo_path.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]
    try:
        # Feast names each module by its path relative to the working directory (as `feast apply`
        # run inside the repo does), so parse from the repo itself, wherever it is installed.
        with contextlib.chdir(root):
            sys.path.insert(0, str(root))
            try:
                contents = parse_repo(root)
            finally:
                sys.path.remove(str(root))
    except Exception as error:
        raise ComponentError(
            STEP,
            f"feature repo {repo_path} failed to load: {error}",
            "fix the definitions; `feast plan` in that folder shows the same error",
        ) from error
    objects: list[Any] = [
        *contents.entities,
        *contents.data_sources,
        *contents.feature_views,
        *contents.feature_services,
    ]
    _point_s3_sources_at_the_platform(objects)
    return objects


def _point_s3_sources_at_the_platform(objects: list[Any]) -> None:
    """File sources on S3 read through the platform's endpoint, recorded in the registry with them
    (a team's feature repo names its data, not where the object store is)."""
    endpoint = services.settings().s3_endpoint
    sources = [obj for obj in objects if hasattr(obj, "file_options")]
    sources += [obj.batch_source for obj in objects if hasattr(getattr(obj, "batch_source", None), "file_options")]
    for source in sources:
        if artifacts.is_s3(source.file_options.uri) and endpoint and not source.file_options.s3_endpoint_override:
            source.file_options.s3_endpoint_override = endpoint


def service_features(definitions: list[Any], feature_service: str) -> list[str]:
    """The feature columns `feature_service` reads, from the repo's parsed definitions."""
    from feast import FeatureService

    for service in definitions:
        if isinstance(service, FeatureService) and service.name == feature_service:
            return [field.name for projection in service.feature_view_projections for field in projection.features]
    raise ComponentError(
        STEP,
        f"feature service '{feature_service}' is not defined in the feature repo",
        "define it in the repo or set feature_service in the pipeline config",
    )


def feature_service_definition(store: FeatureStore, feature_service: str) -> dict[str, Any]:
    """What the feature service serves, without what changes per run (timestamps, the source's
    path): its projections, and each view's entities, TTL and typed fields. Its sha256 is the
    lineage's record of the feature definitions."""
    from google.protobuf.json_format import MessageToDict

    service = store.get_feature_service(feature_service)
    views = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        views.append(
            {
                "name": view.name,
                "entities": sorted(view.entities),
                "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else None,
                "fields": sorted([field.name, str(field.dtype)] for field in view.schema),
            }
        )
    spec = MessageToDict(service.to_proto().spec, preserving_proto_field_name=True)
    spec.pop("description", None)
    for projection in spec.get("features", []):  # the sources point at this run's offline data
        projection.pop("batch_source", None)
        projection.pop("stream_source", None)
    return {"service": spec, "views": views}


def historical_features(store: FeatureStore, entity_df: pd.DataFrame, feature_service: str) -> pd.DataFrame:
    """Point-in-time join: in one query on DuckDB, in time-ordered chunks on the file store.

    The file offline store joins each entity row with every source row of the same entity
    inside the TTL window; one pass over a million events needs tens of GB. Time-ordered
    chunks bound each join by the chunk's span plus the TTL. DuckDB plans the join itself.
    """
    service = store.get_feature_service(feature_service)
    if store.config.offline_store.type != "file":
        joined: pd.DataFrame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
        return joined
    parts = [
        store.get_historical_features(
            entity_df=entity_df.iloc[start : start + HISTORICAL_CHUNK_ROWS], features=service
        ).to_df()
        for start in range(0, len(entity_df), HISTORICAL_CHUNK_ROWS)
    ]
    return pd.concat(parts, ignore_index=True)


def _write_online(store: FeatureStore, view: FeatureView, start: datetime, end: datetime) -> None:
    """One view's interval into the online store: the columnar Redis writer where it applies."""
    from components.platform import online_writer

    if online_writer.supported(store, view):
        online_writer.materialize_view(store, view, start, end)
    else:
        store.materialize(start_date=start, end_date=end, feature_views=[view.name])


def _advance_watermarks(store: FeatureStore, first: datetime, end: datetime) -> datetime:
    """Write each online view from its watermark (the data's first event on a first run) to `end`;
    returns the earliest start."""
    views = [view for view in store.list_feature_views() if view.online]
    starts: list[datetime] = []
    for view in views:
        watermark = view.most_recent_end_time
        if watermark is None:
            _write_online(store, view, first, end)
            starts.append(first)
        else:
            if watermark < end:
                _write_online(store, view, watermark, end)
            starts.append(watermark)
    return min(starts) if starts else end


def materialize_online(store: FeatureStore, frame: pd.DataFrame, timestamp: str, entity: str) -> dict[str, Any]:
    """Move the online store's watermark to the data's end; report what the interval held."""
    end = frame[timestamp].max().to_pydatetime() + timedelta(microseconds=1)
    start = _advance_watermarks(store, frame[timestamp].min().to_pydatetime(), end)
    window = frame[(frame[timestamp] >= pd.Timestamp(start)) & (frame[timestamp] < pd.Timestamp(end))]
    return {
        "online_rows_in_window": len(window),
        "online_entities_written": int(window[entity].nunique()),
        "watermark": end.isoformat(),
        "window_start": pd.Timestamp(start).isoformat(),
    }


def materialize_online_offline(store: FeatureStore, offline: str, timestamp: str, entity: str) -> dict[str, Any]:
    """materialize_online for data read back from the offline store, counted out of core."""
    first, last = point_in_time.time_range(offline, timestamp)
    end = pd.Timestamp(last).to_pydatetime() + timedelta(microseconds=1)
    start = _advance_watermarks(store, pd.Timestamp(first).to_pydatetime(), end)
    counts = point_in_time.window_counts(offline, timestamp, entity, start, end)
    return {**counts, "watermark": end.isoformat(), "window_start": pd.Timestamp(start).isoformat()}


def offline_location(project: str, data_digest: str) -> str:
    """Where validated data lives in the offline store: addressed by its digest, so the same bytes
    land at the same place whichever run wrote them (a cached materialize points at it too)."""
    return f"{services.offline_root(STEP).rstrip('/')}/{project}/{data_digest}/{project}_events.parquet"


def materialize(
    dataset: str,
    feature_repo: str,
    train_out: str,
    holdout_out: str,
    *,
    settings: MaterializeSettings,
    data_digest: str = "",
    store_dir: str | None = None,
    store_config: dict[str, Any] | None = None,
    offline_uri: str | None = None,
    lineage_out: str | None = None,
    logical_date: str = "",
) -> dict[str, Any]:
    """Publish `dataset` to the feature store and write the train and holdout Parquet sets.

    A dataset URI dated with `{date}` is read for `logical_date` (components/dated_inputs.py);
    the lineage records the URI it resolved to and the date, which `mlops reproduce` reads back.

    `data_digest` is what validate read (its output of that name): bytes that differ now are
    refused, so the sets are made from the validated data. `lineage_out` receives what the sets
    were made from (components/lineage.py): the dataset's source and digest, the feature
    service's definition and the point-in-time join's settings.

    `feature_repo` is the resolved folder of `settings.feature_repo` (the caller knows where the
    pipeline's package lives); the rest of what to publish is the config's materialize section.
    """
    if (launched := materialize_ray.launched(dataset, feature_repo, train_out, holdout_out, settings, data_digest,
                                             offline_uri, lineage_out, logical_date)) is not None:  # fmt: skip
        return launched  # engine ray on the cluster: the step launched its RayJob, which ran the rest
    project, feature_service, holdout_fraction = settings.project, settings.feature_service, settings.holdout_fraction
    entity_column, timestamp_column = settings.entity_column, settings.timestamp_column
    label_column, request_features = settings.label_column, list(settings.request_features)
    from components import lineage
    from components.dated_inputs import logical_date as day_of
    from components.dated_inputs import resolve

    dataset = resolve(dataset, logical_date, step=STEP)
    day = day_of(logical_date, step=STEP)  # recorded as the day (YYYY-MM-DD) its URI was filled with
    with tempfile.TemporaryDirectory(prefix="mlops-materialize-") as scratch:
        # any unit and zone, naive times under settings.timezone, a file or a folder (components/raw_data.py),
        # copied in batches into one file; the contract is checked there before anything is written
        data = materialize_input.read_validated(STEP, dataset, settings, data_digest, Path(scratch))
        source = data.source
        offline = offline_uri or offline_location(project, lineage.digest_word(source))
        definitions = repo_definitions(feature_repo, offline, timestamp_column)
        features = service_features(definitions, feature_service)
        if violations := materialize_input.contract_violations(data.path, settings, features):
            raise contract_error(STEP, violations)  # every violation at once, before anything is written

        store = open_store(project, store_dir, store_config, settings.ray if settings.engine == "ray" else None)
        materialize_input.publish(data.path, offline)
        store.apply(definitions)
        applied = [obj.name for obj in definitions if not obj.name.startswith("__")]

        cutoff, waiting = materialize_input.labels_waiting(data.path, settings)  # served, not trained on
        late = {"unlabelled_recent_rows": waiting, "label_cutoff": cutoff.isoformat() if cutoff else ""}
        # the DuckDB join reads plain file sources; Feast's own retrieval (in memory) the rest, and Ray's
        joins = None if materialize_ray.uses_ray(store) else point_in_time.view_joins(store, feature_service)
        if joins is None:
            frame = pd.read_parquet(data.path)
            labelled = frame.loc[~unlabelled_recent(frame, settings)]
            retrieve = materialize_ray.historical_features if materialize_ray.uses_ray(store) else historical_features
            sets = point_in_time.sets_through_feast(
                retrieve, store, labelled, settings, features, train_out, holdout_out
            )
            online = materialize_online(store, frame, timestamp_column, entity_column)
        else:  # out of core: DuckDB under its memory limit (issue 33)
            sets = point_in_time.build_sets(joins, offline, settings, features, cutoff, train_out, holdout_out)
            online = materialize_online_offline(store, offline, timestamp_column, entity_column)
    if lineage_out is not None:
        definition = feature_service_definition(store, feature_service)
        artifacts.write_json(
            lineage_out,
            {
                "datasets": [
                    source,
                    point_in_time.record(train_out, "training", sets.training_rows, sets.schemas["training"]),
                    point_in_time.record(holdout_out, "holdout", sets.holdout_rows, sets.schemas["holdout"]),
                ],
                "feature_service": {
                    "name": feature_service,
                    "sha256": lineage.canonical_sha256(definition),
                    "definition": definition,
                },
                "point_in_time": {
                    "entity_column": entity_column,
                    "timestamp_column": timestamp_column,
                    "label_column": label_column,
                    "request_features": request_features,
                    "holdout_fraction": holdout_fraction,
                    "split": "by time: the latest holdout_fraction of rows is the holdout",
                    "missing_features": {"filled": sets.filled, "fill": dict(settings.fill)},
                    "label_delay": settings.label_delay or "",
                    **late,
                },
                "offline_uri": offline,
                "logical_date": day.isoformat() if day else "",
            },
        )
    return {
        "step": STEP,
        "project": project,
        "applied": applied,
        "feature_service": feature_service,
        "features": [*request_features, *features],
        "training_rows": sets.training_rows,
        "holdout_rows": sets.holdout_rows,
        "holdout_starts": sets.holdout_starts,
        "offline_uri": offline,
        "data_digest": lineage.digest_word(source),
        **late,
        **online,
    }


def online_features(
    project: str,
    feature_service: str,
    entity_rows: list[dict[str, Any]],
    store_dir: str | None = None,
    store_config: dict[str, Any] | None = None,
) -> dict[str, list[Any]]:
    """Read features for entities from the online store (what a scoring service does)."""
    store = open_store(project, store_dir, store_config)
    result: dict[str, list[Any]] = store.get_online_features(
        features=store.get_feature_service(feature_service), entity_rows=entity_rows
    ).to_dict()
    return result


def rebuild_online(project: str, since: datetime | None = None, store_dir: str | None = None) -> dict[str, Any]:
    """Refill the online store from the offline store, whatever it holds now (a wiped Redis).

    Each online feature view is materialized over its offline source's whole time range (or
    from `since`), overwriting what is there; the result equals what incremental runs built,
    because both take each entity's latest row as of the range's end.
    """
    import pyarrow.parquet as pq

    store = open_store(project, store_dir)
    views = [view for view in store.list_feature_views() if view.online]
    if not views:
        raise ComponentError(
            STEP,
            f"project {project!r} has no online feature views in its registry",
            "run the pipeline (or `mlops step materialize`) once so the registry holds the repo",
        )
    rebuilt = []
    for view in views:
        source = view.batch_source
        path = getattr(source, "path", None)
        column = source.timestamp_field
        if not path:
            raise ComponentError(
                STEP, f"feature view {view.name} has a non-file source", "rebuild it with --since from its own store"
            )
        try:
            with artifacts.fetched(path) as local:
                times = pq.read_table(local, columns=[column]).column(column).to_pandas()
        except FileNotFoundError as error:
            raise ComponentError(
                STEP,
                f"the offline data of {view.name} is gone ({path})",
                "restore the offline store first; the online store is rebuilt from it",
            ) from error
        start = since or times.min().to_pydatetime()
        end = times.max().to_pydatetime() + timedelta(microseconds=1)
        _write_online(store, view, start, end)
        rebuilt.append(
            {"view": view.name, "from": start.isoformat(), "to": end.isoformat(), "rows": len(times), "source": path}
        )
    return {"step": STEP, "project": project, "rebuilt": rebuilt}
