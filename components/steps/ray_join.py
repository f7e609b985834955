"""The point-in-time join Feast's Ray offline store falls back to, in linear time (issue 33).

Feast 0.67's Ray store joins a feature view small enough to broadcast with `pd.merge_asof(...,
by=join_keys)`, after sorting the feature rows by the join keys, then the event time. merge_asof
needs its `on` column (the event time) sorted across all rows, so for every keyed view it raises
"right keys must be sorted" and the store falls back to `_manual_point_in_time_join`, which loops
over the entity rows in Python and compares each with every feature row: quadratic. Measured on
this machine (the fraud data, a local Ray of 2 CPUs): 3,000 rows 28 s, 10,000 rows 45 s, 30,000
rows 192 s, and 1M rows had not finished in 25 minutes.

`install()` gives each RayDataProcessor the store creates (in the driver, before the join is
shipped to the Ray workers with it) `fallback` as that method: the same answer (for each entity
row, the matching feature row with the latest event time at or before the row's; the entity rows
in their order and index; the requested features as the fallback types them: float64 numbers,
NaN where nothing matched), with one sorted `merge_asof`. The instance attribute travels with
the pickled processor, so the workers run it without importing anything new.
tests/components/test_materialize_ray.py holds the engine to the single-node engine's sets, row
for row, and times the join at a size the quadratic fallback could not finish in its budget.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["fallback", "install"]

_POSITION = "__mlops_entity_position"


def fallback(
    batch_df: pd.DataFrame,
    features_df: pd.DataFrame,
    join_keys: list[str],
    feature_join_keys: list[str],
    timestamp_field: str,
    requested_feats: list[str],
) -> pd.DataFrame:
    """Feast's `_manual_point_in_time_join`, sorted once: `batch_df` with each requested feature of
    the latest `features_df` row of its keys at or before its event time."""
    present = [feat for feat in requested_feats if feat in features_df.columns]
    left = batch_df.drop(columns=[feat for feat in requested_feats if feat in batch_df.columns])
    left = left.assign(**{_POSITION: range(len(left))}).sort_values(timestamp_field, kind="stable")
    right = features_df[[*feature_join_keys, timestamp_field, *present]]
    right = right.rename(columns=dict(zip(feature_join_keys, join_keys, strict=True)))
    right = right.sort_values(timestamp_field, kind="stable")
    right[timestamp_field] = right[timestamp_field].astype(left[timestamp_field].dtype)
    for key in join_keys:  # merge_asof's `by` needs one type on both sides, as == compared them
        right[key] = right[key].astype(left[key].dtype)
    merged = pd.merge_asof(left, right, on=timestamp_field, by=join_keys or None, direction="backward")
    merged = merged.sort_values(_POSITION, kind="stable").drop(columns=[_POSITION])
    merged.index = batch_df.index
    for feat in requested_feats:
        if feat not in merged.columns:
            merged[feat] = float("nan")
        elif not pd.api.types.is_datetime64_any_dtype(merged[feat]) and pd.api.types.is_numeric_dtype(merged[feat]):
            merged[feat] = merged[feat].astype("float64")  # the fallback's column starts as NaN
    # Feast's column order: the entity rows' own columns (a requested one where it was), then the rest
    return merged[[*batch_df.columns, *(feat for feat in requested_feats if feat not in batch_df.columns)]]


def install() -> None:
    """Give every RayDataProcessor Feast's Ray store creates from now on `fallback` as its
    point-in-time fallback (idempotent)."""
    from feast.infra.offline_stores.contrib.ray_offline_store import ray as feast_ray

    processor: Any = feast_ray.RayDataProcessor
    if getattr(processor.__init__, "_mlops_linear_fallback", False):
        return
    if not hasattr(processor, "_manual_point_in_time_join"):  # Feast changed: nothing to replace
        return
    original = processor.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._manual_point_in_time_join = fallback

    __init__._mlops_linear_fallback = True  # type: ignore[attr-defined]
    processor.__init__ = __init__
