"""Training/serving skew: do the features the scoring path reads now equal what training saw?

For a sample of entities, each at its latest event in the offline store:

    online:  the feature service's values as the scoring path reads them (the pipelined HMGET of
             components/serving/online_reader.py on Redis; Feast's SDK on the laptop's sqlite store)
    offline: Feast's point-in-time join at the same entity and timestamp (what a training set holds)

Each feature is compared within a float tolerance, and the model's score is computed from both
vectors, in the order the model's metadata records (never from a second list). Any difference
beyond tolerance is skew: an online store not re-materialized after the data or a feature view
changed, a view edited without a new training, an encoding that differs between the two paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.config import ScoringSettings
from components.errors import ComponentError

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "STEP",
    "FeatureSkew",
    "SkewReport",
    "check",
    "latest_events",
]

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


def latest_events(store: FeatureStore, feature_service: str, entity_column: str, timestamp_column: str) -> pd.DataFrame:
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


def check(
    store: FeatureStore,
    feature_service: str,
    *,
    entity_column: str,
    timestamp_column: str,
    request_features: list[str],
    model_features: list[str],
    predict: Any,
    settings: ScoringSettings | None = None,
    sample: int = 200,
    tolerance: float = 1e-9,
    seed: int = 0,
) -> SkewReport:
    """Compare what the request path joins (components/serving/scoring.py, the transformer's own code)
    with the point-in-time offline features, and the model's score both ways."""
    from components.serving.scoring import RequestJoiner, online_reader

    latest = latest_events(store, feature_service, entity_column, timestamp_column)
    if latest.empty:
        raise ComponentError(STEP, "the offline store holds no rows", "run the pipeline's materialize step first")
    sampled = latest.sample(n=min(sample, len(latest)), random_state=seed).reset_index(drop=True)
    joiner = RequestJoiner(online_reader(store, feature_service), model_features=model_features,
                           entity_column=entity_column, request_features=request_features,
                           settings=settings or ScoringSettings())  # fmt: skip
    rows = [{key: _plain(value) for key, value in row.items()}
            for row in sampled[[entity_column, *request_features]].to_dict("records")]  # fmt: skip
    joined = joiner.join(rows, request=False)  # a batch of the platform's own, not a request
    entity_df = sampled[[entity_column, timestamp_column]]
    offline = (
        store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(feature_service))
        .to_df()
        .set_index([entity_column, timestamp_column])
        .reindex(pd.MultiIndex.from_frame(entity_df))
        .reset_index()
    )
    skewed: list[FeatureSkew] = []
    for name in joiner.stored_features:
        found = FeatureSkew(name, 0)
        for index in range(len(sampled)):
            served, trained = joined.stored[name][index], _plain(offline[name].iloc[index])
            if not _equal(served, trained, tolerance):
                found.mismatches += 1
                if len(found.examples) < 3:
                    found.examples.append({entity_column: rows[index][entity_column], "online": served,
                                           "offline": trained})  # fmt: skip
        if found.mismatches:
            skewed.append(found)
    training = {
        name: [0.0 if _plain(v) is None else float(v) for v in offline[name]] for name in joiner.stored_features
    }
    training |= {name: joined.values[name] for name in model_features if name in request_features}
    offline_matrix = np.asarray([training[name] for name in model_features], dtype=np.float32).T
    scores = np.abs(predict(joined.matrix) - predict(np.ascontiguousarray(offline_matrix)))
    return SkewReport(
        project=store.config.project,
        feature_service=feature_service,
        entities=len(sampled),
        features=joiner.stored_features,
        skewed=skewed,
        score_max_difference=float(scores.max()) if len(scores) else 0.0,
        missing_online=sum(joined.unknown),
    )


def _plain(value: Any) -> Any:
    """A numpy or pandas scalar as plain Python; NaN and NA as None."""
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
