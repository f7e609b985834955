"""The rebuild benchmark's own checks (benchmarks/rebuild_bench.py), without services: what it takes
as each entity's latest offline row, and that its read-back check names every wrong online value.
The benchmark itself runs on real services in tests/test_benchmarks.py's smoke test; a check that
could not fail there would pass a rebuild that wrote nothing, or the wrong row."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmarks.rebuild_bench import differences, latest_rows

FEATURES = ["txn_count_1h", "amount_avg_7d"]


def events() -> pd.DataFrame:
    """Three users' events out of time order; user 3's latest row comes first in the file."""
    stamps = pd.to_datetime(
        ["2026-06-03", "2026-06-01", "2026-06-02", "2026-06-05", "2026-06-04", "2026-06-01"], utc=True
    )
    return pd.DataFrame(
        {
            "user_id": [3, 1, 1, 2, 2, 3],
            "event_timestamp": stamps,
            "txn_count_1h": [30, 10, 11, 21, 20, 31],
            "amount_avg_7d": [3.5, 1.0, 1.5, 2.25, 2.0, 3.0],
        }
    )


def test_latest_rows_takes_each_entitys_newest_event_whatever_the_file_order() -> None:
    latest = latest_rows(events(), FEATURES)
    assert latest.to_dict("index") == {
        1: {"txn_count_1h": 11, "amount_avg_7d": 1.5},
        2: {"txn_count_1h": 21, "amount_avg_7d": 2.25},
        3: {"txn_count_1h": 30, "amount_avg_7d": 3.5},
    }


def answer(chosen: pd.DataFrame, absent_value: Any = None) -> dict[str, list[Any]]:
    """What Feast's online read returns for chosen's entities then the absent one, when all is right."""
    return {feature: [*chosen[feature].tolist(), absent_value] for feature in chosen.columns}


def test_the_read_back_check_passes_only_the_offline_latest_values() -> None:
    chosen = latest_rows(events(), FEATURES)
    assert differences(chosen, answer(chosen), absent=4) == []

    stale = answer(chosen)
    stale["txn_count_1h"][chosen.index.get_loc(2)] = 20  # user 2's older row online
    assert differences(chosen, stale, absent=4) == ["txn_count_1h of user 2: online 20, offline latest 21"]

    emptied = answer(chosen)
    emptied["amount_avg_7d"][chosen.index.get_loc(1)] = None  # user 1 lost
    assert differences(chosen, emptied, absent=4) == ["amount_avg_7d of user 1: online None, offline latest 1.5"]


def test_the_read_back_check_names_a_value_for_an_entity_without_offline_rows_and_a_short_answer() -> None:
    chosen = latest_rows(events(), FEATURES)
    invented = differences(chosen, answer(chosen, absent_value=7), absent=4)
    assert invented == [
        "txn_count_1h of user 4, who has no offline rows: 7, expected None",
        "amount_avg_7d of user 4, who has no offline rows: 7, expected None",
    ]
    short = answer(chosen)
    short["amount_avg_7d"] = short["amount_avg_7d"][:2]
    assert differences(chosen, short, absent=4) == ["amount_avg_7d: 2 values online for 4 entities"]
