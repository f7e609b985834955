"""The validate floor of benchmarks/floors_bench.py checks what the step checks: for the fraud suite,
a frame that breaks each expectation in turn is judged by GX (the step's own suite runner) and by the
floor's pyarrow form, and every expectation's verdict must agree on every frame. A floor that judged
differently would time other work; the bench also refuses a run where the counts differ."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from benchmarks.floors_bench import expectation_holds
from components.steps.validate import load_suite, run_suite
from pipelines.fraud import pipeline as fraud
from pipelines.fraud.data import generate

SUITE = load_suite(fraud.DECLARATION.folder / "expectations.json")


def _set(column: str, value: Any, row: int = 3) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype(object) if value is None else frame[column]
        frame.loc[row, column] = value
        return frame.infer_objects()

    return apply


def _duplicated(ids: pd.Series) -> pd.Series:
    return ids.where(ids.index != 5, ids.loc[4])


BREAKERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "good data": lambda frame: frame,
    "too few rows": lambda frame: frame.head(50),
    "a column missing": lambda frame: frame.drop(columns=["txn_count_24h"]),
    "a duplicate id": lambda frame: frame.assign(transaction_id=_duplicated(frame["transaction_id"])),
    "ids as floats": lambda frame: frame.assign(user_id=frame["user_id"].astype("float64")),
    "times as text": lambda frame: frame.assign(event_timestamp=frame["event_timestamp"].astype(str)),
    "a null amount": _set("amount", None),
    "a null label": _set("is_fraud", None),
    "a negative amount": _set("amount", -1.0),
    "an unknown category": _set("merchant_category", 15),
    "a label of 2": _set("is_fraud", 2),
    "every row fraud": lambda frame: frame.assign(is_fraud=1),
}


def _number(value: Any) -> Any:
    """GX gives back a bound of 0 as 0.0: numbers compare as floats."""
    if isinstance(value, list):
        return [_number(item) for item in value]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _key(config: dict[str, Any]) -> str:
    kwargs = {name: _number(value) for name, value in config["kwargs"].items() if name != "batch_id"}
    return json.dumps([config["type"], kwargs], sort_keys=True, default=str)


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_the_floor_judges_every_expectation_as_gx_does(case: str) -> None:
    frame = BREAKERS[case](generate(400, 3))
    results, _ = run_suite(frame, SUITE, "expectations.json")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    gx = {_key(result["expectation_config"]): bool(result["success"]) for result in results}
    floor = {_key(entry): expectation_holds(table, entry["type"], entry["kwargs"]) for entry in SUITE["expectations"]}
    assert gx.keys() == floor.keys(), "GX judged other expectations than the suite's"
    assert floor == gx, [(key, gx[key], floor[key]) for key in gx if gx[key] != floor[key]]
    if case != "good data":  # each case breaks something: the comparison is not between two all-pass lists
        assert not all(gx.values()), f"{case}: nothing failed"
