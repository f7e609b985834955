"""The request path's join on the laptop's stores: entity keys and request features in, the model's
matrix out, in the order its metadata records; and the errors a caller can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.config import ScoringSettings
from components.errors import ComponentError
from components.serving.scoring import RequestError, RequestJoiner, UnknownEntity, online_reader
from components.steps.materialize import open_store
from components.steps.model_formats import load_predictor
from tests.conftest import FEATURES, MATERIALIZE_SETTINGS


def _joiner(materialized: dict[str, Any], features: list[str] = FEATURES, **settings: Any) -> RequestJoiner:
    store = open_store("fraud", materialized["store"])
    return RequestJoiner(online_reader(store, "fraud_model_v1"), model_features=features, entity_column="user_id",
                         request_features=MATERIALIZE_SETTINGS.request_features,
                         settings=ScoringSettings(**settings))  # fmt: skip


def _latest(raw_dataset: Path) -> pd.DataFrame:
    raw = pd.read_parquet(raw_dataset).sort_values("event_timestamp")
    return raw.groupby("user_id").tail(1).head(20)


def test_the_joined_matrix_follows_the_models_order_and_scores_as_training(
    materialized: dict[str, Any], raw_dataset: Path, trained: dict[str, Path]
) -> None:
    latest = _latest(raw_dataset)
    rows = [{"user_id": int(r.user_id), "amount": float(r.amount), "merchant_category": int(r.merchant_category)}
            for r in latest.itertuples()]  # fmt: skip
    joined = _joiner(materialized).join(rows)
    assert joined.matrix.dtype == np.float32 and joined.matrix.shape == (20, len(FEATURES)) and not any(joined.unknown)
    expected = latest[FEATURES].to_numpy(dtype=np.float32)  # the raw data holds what was materialized
    np.testing.assert_allclose(joined.matrix, expected, rtol=1e-6)
    reordered = list(reversed(FEATURES))  # another model's order: the matrix follows it
    np.testing.assert_allclose(_joiner(materialized, reordered).join(rows).matrix, expected[:, ::-1], rtol=1e-6)
    predict = load_predictor(trained["model"], json.loads(trained["metadata"].read_text()))
    np.testing.assert_allclose(predict(joined.matrix), predict(expected), rtol=1e-6)


def test_a_missing_or_non_numeric_request_feature_is_a_400_naming_it(materialized: dict[str, Any]) -> None:
    joiner = _joiner(materialized)
    with pytest.raises(RequestError, match="row 1 lacks request feature 'merchant_category'") as missing:
        joiner.join([{"user_id": 1, "amount": 3.0, "merchant_category": 2}, {"user_id": 2, "amount": 4.0}])
    assert missing.value.http_status == 400 and missing.value.exit_code == 2
    with pytest.raises(RequestError, match=r"row 0: amount is not a number \(got str\)") as typed:
        joiner.join([{"user_id": 1, "amount": "310", "merchant_category": 2}])
    assert "310" not in str(typed.value)  # issue 29: errors name the field and the rule, not the value
    for value in (float("nan"), float("inf"), 10**400, 2**200, -1e39):  # issue 29: 10**400 was an OverflowError
        with pytest.raises(RequestError, match="row 0: amount is not a finite float32 number"):
            joiner.join([{"user_id": 1, "amount": value, "merchant_category": 2}])
    with pytest.raises(RequestError, match="lacks the entity key 'user_id'"):
        joiner.join([{"amount": 3.0, "merchant_category": 2}])


def test_an_unknown_entity_is_scored_on_the_defaults_and_flagged_or_rejected(materialized: dict[str, Any]) -> None:
    row = {"user_id": 10**9, "amount": 12.0, "merchant_category": 3}  # never materialized
    joined = _joiner(materialized, defaults={"txn_count_1h": 1.0}).join([row])
    assert joined.unknown == [True] and joined.stored["txn_count_24h"] == [None]
    assert joined.values["txn_count_1h"] == [1.0] and joined.values["txn_count_24h"] == [0.0]  # 0: as training filled
    with pytest.raises(UnknownEntity, match=r"no online features for the user_id of rows \[0\]") as rejected:
        _joiner(materialized, unknown_entity="reject").join([row])
    assert rejected.value.http_status == 404 and "1000000000" not in str(rejected.value)  # rows, not the ids sent


def test_a_model_needing_a_feature_nobody_provides_is_refused_at_start(materialized: dict[str, Any]) -> None:
    with pytest.raises(ComponentError, match=r"the model needs \['card_age_days'\]"):
        _joiner(materialized, [*FEATURES, "card_age_days"])


@pytest.mark.parametrize(
    ("value", "rule"),
    [("abc", "must be an integer"), (2**64, "outside int64"), (-(2**63) - 1, "outside int64"), (True, "integer"),
     (1.5, "integer"), ({"a": [1]}, "integer"), (None, "lacks the entity key")],
)  # fmt: skip
def test_wrong_entity_ids_are_400_naming_the_field(materialized: dict[str, Any], value: Any, rule: str) -> None:
    """issue 29: an entity id of "abc" or of 2**64 or more answered 500 (components/serving/online_reader.py)."""
    joiner = _joiner(materialized)
    assert joiner.reader.entity_types == {"user_id": "INT64"}
    with pytest.raises(RequestError) as caught:
        joiner.join([{"user_id": value, "amount": 1.0, "merchant_category": 1}])
    assert "user_id" in str(caught.value) and rule in str(caught.value)


def test_in_range_entity_ids_still_join(materialized: dict[str, Any]) -> None:
    """issue 29: the bounds themselves are valid ids (an unknown entity, not a 400)."""
    joiner = _joiner(materialized, unknown_entity="defaults")
    for value in (-(2**63), 2**63 - 1):
        assert joiner.join([{"user_id": value, "amount": 1.0, "merchant_category": 1}]).unknown == [True]


def test_errors_name_the_field_and_rule_never_the_value() -> None:
    """issue 29: error messages echoed the input."""
    from components.serving.scoring import check_entity_id

    with pytest.raises(RequestError) as caught:
        check_entity_id("user_id", 10**400, "INT64", 0)
    assert "user_id is outside int64" in caught.value.problem and "1000" not in caught.value.problem
    with pytest.raises(RequestError) as caught:
        check_entity_id("merchant", "\x00" * 10_000, "STRING", 3)
    assert "\x00" not in str(caught.value) and "256" in str(caught.value)


def test_too_many_rows_is_a_400_naming_the_limit(materialized: dict[str, Any]) -> None:
    """issue 29: there was no limit on rows per request; past scoring.max_rows it is a 400 naming it."""
    row = {"user_id": 1, "amount": 1.0, "merchant_category": 1}
    joiner = _joiner(materialized, max_rows=3)
    assert len(joiner.join([row] * 3).unknown) == 3
    with pytest.raises(RequestError, match=r"(?s)4 rows, over the limit of 3.*scoring\.max_rows"):
        joiner.join([row] * 4)


def test_a_stored_feature_is_never_taken_from_the_caller(materialized: dict[str, Any]) -> None:
    """A transformer told that a feature the service serves comes with the request would score the
    caller's value instead of the store's (a forged feature): it refuses to start. Control: the
    pipeline's own request features (not served by the service) start it (the tests above)."""
    store = open_store("fraud", materialized["store"])
    with pytest.raises(
        ComponentError, match=r"request feature\(s\) \['txn_count_1h'\] are served by the feature"
    ) as refused:
        RequestJoiner(online_reader(store, "fraud_model_v1"), model_features=FEATURES, entity_column="user_id",
                      request_features=[*MATERIALIZE_SETTINGS.request_features, "txn_count_1h"],
                      settings=ScoringSettings())  # fmt: skip
    assert refused.value.exit_code == 2
