"""Training/serving skew: do the features the scoring path reads now equal what training saw?

For a sample of entities, each at its latest event in the offline store:

    online:  the feature service's values as the scoring path reads them (the pipelined HMGET of
             components/online.py on Redis; Feast's SDK on the laptop's sqlite store)
    offline: Feast's point-in-time join at the same entity and timestamp (what a training set holds)

Each feature is compared within a float tolerance, and the model's score is computed from both
vectors, in the order the model's metadata records (never from a second list). Any difference
beyond tolerance is skew: an online store not re-materialized after the data or a feature view
changed, a view edited without a new training, an encoding that differs between the two paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.errors import ComponentError

STEP = "skew-check"


@dataclass
class FeatureSkew:
    feature: str
    mismatches: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SkewReport:
    project: str
    feature_service: str
    entities: int
    features: list[str]
    skewed: list[FeatureSkew]
    score_max_difference: float
    missing_online: int
    """Sampled entities the online store holds nothing for (never materialized, or expired)."""

    @property
    def passed(self) -> bool:
        return not self.skewed and self.missing_online == 0


def _equal(a: Any, b: Any, tolerance: float) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    try:
        return abs(float(a) - float(b)) <= tolerance * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return bool(a == b)


def latest_events(store: Any, feature_service: str, entity_column: str, timestamp_column: str) -> pd.DataFrame:
    """Each entity's latest row in the offline data the feature service's views read."""
    from components import artifacts

    service = store.get_feature_service(feature_service)
    view = store.get_feature_view(service.feature_view_projections[0].name)
    path = getattr(view.batch_source, "path", None)
    if not path:
        raise ComponentError(STEP, f"feature view {view.name} has no file source", "point it at the offline Parquet")
    with artifacts.fetched(path) as local:
        frame = pd.read_parquet(local)
    return frame.sort_values(timestamp_column, kind="stable").groupby(entity_column, sort=False).tail(1)


def online_values(store: Any, feature_service: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The scoring path's read: the pipelined HMGET on Redis, Feast's SDK on any other store."""
    if getattr(store.config.online_store, "type", "") == "redis":
        from components.online import OnlineFeatureReader

        return OnlineFeatureReader(store, feature_service).get(rows)
    result: dict[str, list[Any]] = store.get_online_features(
        features=store.get_feature_service(feature_service), entity_rows=rows
    ).to_dict()
    return result


def check(
    store: Any,
    feature_service: str,
    *,
    entity_column: str,
    timestamp_column: str,
    model_features: list[str],
    predict: Any,
    sample: int = 200,
    tolerance: float = 1e-9,
    seed: int = 0,
) -> SkewReport:
    """Compare online with point-in-time offline features, and the model's score both ways."""
    latest = latest_events(store, feature_service, entity_column, timestamp_column)
    if latest.empty:
        raise ComponentError(STEP, "the offline store holds no rows", "run the pipeline's materialize step first")
    sampled = latest.sample(n=min(sample, len(latest)), random_state=seed).reset_index(drop=True)
    online = online_values(store, feature_service, [{entity_column: row} for row in sampled[entity_column].tolist()])
    service_features = [name for name in online if name != entity_column]
    entity_df = sampled[[entity_column, timestamp_column]]
    offline = (
        store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(feature_service))
        .to_df()
        .set_index([entity_column, timestamp_column])
        .reindex(pd.MultiIndex.from_frame(entity_df))
        .reset_index()
    )
    skewed: list[FeatureSkew] = []
    missing = sum(all(online[name][i] is None for name in service_features) for i in range(len(sampled)))
    for name in service_features:
        found = FeatureSkew(name, 0)
        for index in range(len(sampled)):
            served, trained = online[name][index], offline[name].iloc[index]
            trained = None if pd.isna(trained) else trained.item() if hasattr(trained, "item") else trained
            if not _equal(served, trained, tolerance):
                found.mismatches += 1
                if len(found.examples) < 3:
                    found.examples.append({entity_column: sampled[entity_column].iloc[index].item(),
                                           "online": served, "offline": trained})  # fmt: skip
        if found.mismatches:
            skewed.append(found)

    def vector(values: dict[str, Any]) -> np.ndarray:
        columns = []
        for name in model_features:
            column = values[name] if name in values else sampled[name].tolist()  # request features come with the call
            columns.append([0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in column])
        return np.asarray(columns, dtype=np.float32).T

    offline_values = {name: offline[name].tolist() for name in service_features}
    scores = np.abs(predict(vector(online)) - predict(vector(offline_values)))
    return SkewReport(
        project=store.config.project,
        feature_service=feature_service,
        entities=len(sampled),
        features=service_features,
        skewed=skewed,
        score_max_difference=float(scores.max()) if len(scores) else 0.0,
        missing_online=int(missing),
    )
