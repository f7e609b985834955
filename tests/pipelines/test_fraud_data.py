from __future__ import annotations

import pandas as pd
import pytest

from pipelines.fraud.data import generate


def test_same_seed_same_data_other_seed_other_data() -> None:
    pd.testing.assert_frame_equal(generate(3000, 5), generate(3000, 5))
    assert not generate(3000, 5).equals(generate(3000, 6))


@pytest.mark.parametrize("rows", [1000, 50_000])
def test_realistic_shape(rows: int) -> None:
    frame = generate(rows, 1)
    assert len(frame) == rows and frame["transaction_id"].is_unique
    assert 0.01 <= frame["is_fraud"].mean() <= 0.03
    assert not frame.duplicated(["user_id", "event_timestamp"]).any()
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    # fraud arrives in bursts: fraudulent transactions see more recent activity
    by_label = frame.groupby("is_fraud")["txn_count_1h"].mean()
    assert by_label[1] > 3 * by_label[0]


def test_velocity_counts_only_earlier_transactions() -> None:
    frame = generate(2000, 3).sort_values(["user_id", "event_timestamp"])
    first = frame.groupby("user_id").head(1)
    assert (first["txn_count_24h"] == 0).all() and (first["txn_count_1h"] == 0).all()
    user = frame["user_id"].value_counts().index[0]
    rows = frame[frame["user_id"] == user].reset_index(drop=True)
    for index in range(len(rows)):
        now = rows.loc[index, "event_timestamp"]
        expected = ((rows["event_timestamp"] < now) & (rows["event_timestamp"] >= now - pd.Timedelta(hours=24))).sum()
        assert rows.loc[index, "txn_count_24h"] == expected


def test_too_few_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 100"):
        generate(10, 1)
