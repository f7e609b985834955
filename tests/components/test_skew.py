"""The skew check on the laptop's stores (sqlite online, DuckDB offline): in step after
materialize, and failing, naming the feature, once the offline data under a view changed and
the online store was not re-materialized."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.steps import skew
from components.steps.materialize import apply_repo, open_store
from components.steps.model_formats import load_predictor
from tests.conftest import FEATURE_REPO, FEATURES, MATERIALIZE_SETTINGS


@pytest.fixture
def store_copy(materialized: dict[str, Any], tmp_path: Path) -> Path:
    """The session's materialized store, copied: a test that breaks it breaks only its copy."""
    folder = tmp_path / "store"
    shutil.copytree(materialized["store"], folder)
    return folder


def _check(store_dir: Path, trained: dict[str, Path]) -> skew.SkewReport:
    metadata = json.loads(trained["metadata"].read_text())
    return skew.check(
        open_store("fraud", store_dir),
        "fraud_model_v1",
        entity_column=MATERIALIZE_SETTINGS.entity_column,
        timestamp_column=MATERIALIZE_SETTINGS.timestamp_column,
        request_features=MATERIALIZE_SETTINGS.request_features,
        model_features=FEATURES,
        predict=load_predictor(trained["model"], metadata),
        sample=60,
    )


def test_online_features_equal_the_point_in_time_features_after_materialize(
    store_copy: Path, trained: dict[str, Path]
) -> None:
    report = _check(store_copy, trained)
    assert report.passed and report.entities == 60 and report.score_max_difference == 0.0
    assert set(report.features) == set(FEATURES) - {"amount", "merchant_category"}  # the rest come with the call


def test_a_view_whose_data_changed_without_re_materializing_is_named(
    store_copy: Path, trained: dict[str, Path]
) -> None:
    store = open_store("fraud", store_copy)
    source = skew.latest_events(store, "fraud_model_v1", "user_id", "event_timestamp")  # proves the path reads
    assert not source.empty
    view = store.get_feature_view(store.get_feature_service("fraud_model_v1").feature_view_projections[0].name)
    frame = pd.read_parquet(view.batch_source.path)
    frame["txn_count_24h"] = frame["txn_count_24h"] + 1  # the view's data is edited...
    edited = store_copy / "edited.parquet"
    frame.to_parquet(edited, index=False)
    apply_repo(store, str(FEATURE_REPO), str(edited))  # ...and re-applied, but never re-materialized online
    report = _check(store_copy, trained)
    assert not report.passed
    assert [found.feature for found in report.skewed] == ["txn_count_24h"]
    (found,) = report.skewed
    assert found.mismatches == 60 and found.examples[0]["offline"] == found.examples[0]["online"] + 1
    assert report.score_max_difference > 0.0
