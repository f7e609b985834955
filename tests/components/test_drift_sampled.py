"""issue 33: drift compares seeded uniform samples of bounded size (components/steps/drift_data.py),
and says so; on known drifted and known undrifted data each feature's verdict is the whole-data
run's, the KS statistic lies within the stated tolerance of the whole-data one, and the facts a
sample could miss (row counts, empty columns, a category the reference never saw) come from all rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from components.config import DriftSettings
from components.errors import ComponentError
from components.steps import drift, drift_data, drift_report
from tests.components.test_drift import _register, registry_home  # noqa: F401  (the registry fixture)

ROWS = 120_000
LIMIT = 15_000
NUMERIC = ["amount", "velocity", "age_days"]
CATEGORICAL = ["merchant_category", "channel"]
FEATURES = NUMERIC + CATEGORICAL
SETTINGS = DriftSettings(categorical_features=CATEGORICAL)


def _exactly(rng: np.random.Generator, values: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The values in exactly these shares, shuffled: undrifted categories are the same mix, not two
    draws of it (Evidently's chi-squared takes the reference's shares as exact, so two draws of one
    mix read as drift more often than its p-value says)."""
    counts = np.floor(shares / shares.sum() * ROWS).astype(np.int64)
    counts[0] += ROWS - counts.sum()
    return rng.permutation(np.repeat(values, counts))


def _frame(seed: int, *, drifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shares = np.linspace(1.0, 3.0, 12)
    if drifted:
        shares = shares[::-1]  # the risky categories take the common ones' place
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0 + (0.25 if drifted else 0.0), 1.0, ROWS),
            "velocity": rng.poisson(4, ROWS).astype(np.int64),
            "age_days": rng.gamma(2.0, 30.0, ROWS),
            "merchant_category": _exactly(rng, np.arange(12), shares),
            "channel": _exactly(rng, np.array(["web", "pos", "app"]), np.ones(3)),
        }
    )
    frame.loc[rng.random(ROWS) < 0.03, "age_days"] = np.nan
    return frame


def _write(frame: pd.DataFrame, folder: Path) -> Path:
    """As upstream writers do: several files, several row groups, no pandas metadata."""
    folder.mkdir(parents=True)
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata()
    for index, start in enumerate(range(0, ROWS, 50_000)):
        pq.write_table(table.slice(start, 50_000), folder / f"part-{index}.parquet", row_group_size=20_000)
    return folder


@pytest.fixture()
def sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift_data, "BATCH_ROWS", 7_000)  # many batches, not aligned with the row groups


def test_the_sample_is_uniform_seeded_in_order_and_the_whole_datas_facts_are_exact(
    tmp_path: Path, sampled: None
) -> None:
    frame = _frame(1).assign(row=np.arange(ROWS))
    frame.loc[frame.index[-3:], "channel"] = "kiosk"  # three rows of 120,000: too rare for a sample to hold
    folder = _write(frame, tmp_path / "data")
    window = drift_data.read_window(str(folder), [*FEATURES, "row"], CATEGORICAL, what="current data", limit=LIMIT)
    again = drift_data.read_window(str(folder), [*FEATURES, "row"], CATEGORICAL, what="current data", limit=LIMIT)
    assert len(window.frame) == LIMIT and window.rows == ROWS and window.sampled == LIMIT
    pd.testing.assert_frame_equal(window.frame, again.frame)  # seeded: the same data, the same sample
    rows = window.frame["row"].to_numpy()
    assert (np.diff(rows) > 0).all() and len(np.unique(rows)) == LIMIT  # without replacement, in order
    # uniform: each tenth of the data holds a tenth of the sample, within Hoeffding's bound
    eps = math.sqrt(math.log(2 / drift_data.DELTA) / (2 * LIMIT))
    tenths = np.bincount(rows * 10 // ROWS, minlength=10) / LIMIT
    assert np.all(np.abs(tenths - 0.1) <= eps), tenths
    assert window.non_null == {name: int(frame[name].notna().sum()) for name in [*FEATURES, "row"]}
    assert window.categories["channel"] == {"web", "pos", "app", "kiosk"}
    assert window.categories["merchant_category"] == frozenset(range(12))
    # at or under the limit: every row, the whole data's figures
    small = _write(frame.head(ROWS), tmp_path / "small")
    everything = drift_data.sample_dataset(ds.dataset(small), [*FEATURES, "row"], CATEGORICAL, limit=ROWS)
    assert everything.sampled is None and everything.frame["row"].tolist() == list(range(ROWS))


@pytest.mark.parametrize("drifted", [False, True], ids=["undrifted", "drifted"])
def test_verdicts_equal_the_whole_datas_and_statistics_lie_within_the_tolerance(
    tmp_path: Path, sampled: None, drifted: bool
) -> None:
    reference, current = _frame(1), _frame(2, drifted=drifted)
    whole = drift.compare(reference, current, features=FEATURES, settings=SETTINGS)
    ref_window = drift_data.read_window(
        str(_write(reference, tmp_path / "r")), None, CATEGORICAL, what="reference", limit=LIMIT
    )
    cur_window = drift_data.read_window(
        str(_write(current, tmp_path / "c")), FEATURES, CATEGORICAL, what="current", limit=LIMIT
    )
    part = drift.compare(ref_window, cur_window, features=FEATURES, settings=SETTINGS)
    assert (part.reference_sampled, part.current_sampled, part.reference_rows, part.current_rows) == (
        LIMIT,
        LIMIT,
        ROWS,
        ROWS,
    )
    assert whole.reference_sampled is None and whole.current_sampled is None
    assert [(f.feature, f.drifted) for f in part.features] == [(f.feature, f.drifted) for f in whole.features]
    moved = {"amount", "merchant_category"} if drifted else set()
    assert {f.feature for f in whole.features if f.drifted} == moved  # the data is what the test says it is
    assert part.detected == whole.detected == drifted
    tolerance = drift_data.ks_tolerance(LIMIT, LIMIT)
    for one, other in zip(whole.features, part.features, strict=True):
        if one.method == "ks":
            assert one.statistic is not None and other.statistic is not None
            assert abs(one.statistic - other.statistic) <= tolerance, (one.feature, one.statistic, other.statistic)
    # each category's share in the samples within Hoeffding's eps of the whole data's
    eps = math.sqrt(math.log(2 / drift_data.DELTA) / (2 * LIMIT))
    for name in CATEGORICAL:
        for side, window in ((reference, ref_window), (current, cur_window)):
            shares = window.frame[name].value_counts(normalize=True)
            expected = side[name].value_counts(normalize=True).reindex(shares.index)
            assert (shares - expected).abs().max() <= eps


def test_the_table_and_report_say_what_was_sampled_and_rare_facts_come_from_all_rows(
    tmp_path: Path, sampled: None
) -> None:
    reference, current = _frame(1), _frame(2)
    current.loc[current.index[-2:], "merchant_category"] = 99  # a category the reference never saw, in 2 rows
    ref_window = drift_data.read_window(
        str(_write(reference, tmp_path / "r")), None, CATEGORICAL, what="reference", limit=LIMIT
    )
    cur_window = drift_data.read_window(
        str(_write(current, tmp_path / "c")), FEATURES, CATEGORICAL, what="current", limit=LIMIT
    )
    result = drift.compare(ref_window, cur_window, features=FEATURES, settings=SETTINGS)
    merchant = next(f for f in result.features if f.feature == "merchant_category")
    assert merchant.new_categories == [99] and merchant.statistic is None
    decision = {"retrain": result.detected, "reason": result.summary(), "key": ""}
    row = drift_report.table(result, decision, None)
    assert (row["current_sampled"], row["reference_sampled"], row["current_rows"]) == (LIMIT, LIMIT, ROWS)
    json.dumps(row)
    drift_report.write_report(result, str(tmp_path / "report.html"), result.summary())
    note = f"a seeded uniform sample of {LIMIT:,} of its {ROWS:,} rows"
    assert note in (tmp_path / "report.html").read_text()
    # a column empty in the whole window is refused though only a sample is compared
    empty = _write(current.assign(velocity=np.nan), tmp_path / "empty")
    window = drift_data.read_window(str(empty), FEATURES, CATEGORICAL, what="current", limit=LIMIT)
    with pytest.raises(ComponentError, match=r"\['velocity'\] have no values in the current window"):
        drift.compare(ref_window, window, features=FEATURES, settings=SETTINGS)
    one_value = current.assign(velocity=np.nan)
    one_value.loc[one_value.index[-1], "velocity"] = 3.0  # one value in 120,000: kept, though a sample misses it
    window = drift_data.read_window(
        str(_write(one_value, tmp_path / "one")), FEATURES, CATEGORICAL, what="current", limit=LIMIT
    )
    assert window.non_null["velocity"] == 1


def test_bad_sample_sizes_are_refused(tmp_path: Path) -> None:
    """`drift.sample_rows` is a field of the pipeline's config, checked where the config is read."""
    from components.config import load_config

    assert DriftSettings().sample_rows == drift_data.SAMPLE_ROWS == 1_000_000
    with pytest.raises(ValidationError, match="sample_rows"):
        DriftSettings(sample_rows=0)
    config = tmp_path / "config.yaml"
    config.write_text("name: fraud\ndrift:\n  sample_rows: lots\n")
    with pytest.raises(ComponentError, match="sample_rows") as refused:
        load_config(config)
    assert refused.value.exit_code == 2


def test_the_reference_from_the_registry_is_sampled(
    trained: dict[str, Path],
    evaluated: dict[str, Path],
    materialized: dict[str, Any],
    registry_home: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from components.platform import model_registry

    summary = _register(trained, evaluated, tmp_path, registry_home, train_set=str(materialized["train"]))
    mlflow = model_registry.client()
    mlflow.set_registered_model_alias("drift-model", "champion", str(summary["version"]))
    reference = drift.find_reference(mlflow, "drift-model", categorical=("merchant_category",), sample_rows=500)
    train = pd.read_parquet(materialized["train"])
    assert reference.window is not None and len(reference.frame) == 500 and reference.window.rows == len(train)
    assert reference.window.categories["merchant_category"] == set(train["merchant_category"].dropna().unique())
