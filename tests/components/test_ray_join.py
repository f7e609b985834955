"""components/steps/ray_join.py: the linear point-in-time fallback gives Feast's own fallback's answer.

Feast's `_manual_point_in_time_join` (the quadratic loop its Ray store falls back to for every keyed
view) is the reference: on entity and feature rows with several keys, exact-time matches, rows with
no earlier feature, entities with no feature rows at all, a key typed differently on each side and a
requested feature the entity rows already carry, `fallback` returns the same frame (values, dtypes,
order, index). The control: a fallback that takes the earliest row instead is told apart. Then the
patch itself: a processor the store creates carries `fallback`, also after the pickling that ships
it to Ray's workers, and the end-to-end equality with the single-node engine is
tests/components/test_materialize_ray.py's.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from components.steps import ray_join

FEATS = ["count", "average"]


def _frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    features = pd.DataFrame(
        {
            "user": rng.integers(0, 6, 80),
            "event_timestamp": start + pd.to_timedelta(rng.integers(0, 500, 80), unit="s"),
            "count": rng.integers(0, 9, 80),
            "average": rng.normal(size=80),
        }
    ).drop_duplicates(["user", "event_timestamp"], keep="last")  # as Feast dedups before its join
    entities = pd.DataFrame(
        {
            "user": rng.integers(0, 8, 40).astype("float64"),  # users 6 and 7 have no feature rows
            "event_timestamp": start + pd.to_timedelta(rng.integers(0, 600, 40), unit="s"),
            "amount": rng.normal(size=40),
            "count": -1,  # the entity rows carry a column of the requested name: the fallback replaces it
        }
    )
    entities.loc[3, "event_timestamp"] = features["event_timestamp"].iloc[5]  # an exact-time match
    entities.loc[3, "user"] = float(features["user"].iloc[5])
    entities.index = entities.index * 3 + 7  # an index of its own, kept
    return entities, features


def _feasts(entities: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    from feast.infra.offline_stores.contrib.ray_offline_store.ray import RayDataProcessor

    processor = RayDataProcessor.__new__(RayDataProcessor)  # the method reads nothing of the instance
    result: pd.DataFrame = RayDataProcessor._manual_point_in_time_join(
        processor, entities, features, ["user"], ["user"], "event_timestamp", FEATS
    )
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fallback_answers_as_feasts_own(seed: int) -> None:
    entities, features = _frames(seed)
    expected = _feasts(entities, features)
    got = ray_join.fallback(entities, features, ["user"], ["user"], "event_timestamp", FEATS)
    assert expected["count"].notna().any() and expected["count"].isna().any(), "matches and misses both"
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_the_comparison_sees_the_earliest_row_taken() -> None:
    """Control: a join that takes each key's earliest earlier row is told apart."""
    entities, features = _frames(1)
    expected = _feasts(entities, features)
    earliest = features.sort_values("event_timestamp").groupby("user", as_index=False).head(1)
    wrong = ray_join.fallback(entities, earliest, ["user"], ["user"], "event_timestamp", FEATS)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(wrong[expected.columns], expected, check_exact=True)


def test_the_store_ships_the_fallback_to_its_workers() -> None:
    from feast.infra.offline_stores.contrib.ray_offline_store.ray import RayDataProcessor, RayResourceManager

    ray_join.install()
    ray_join.install()  # idempotent
    processor = RayDataProcessor(RayResourceManager.__new__(RayResourceManager))
    assert processor._manual_point_in_time_join is ray_join.fallback
    shipped = pickle.loads(pickle.dumps(processor))  # as Ray ships the join's closure
    assert shipped._manual_point_in_time_join is ray_join.fallback
