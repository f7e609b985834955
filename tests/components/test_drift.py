"""The drift component: the tests Evidently runs, the decision, and each bad input's error.

The registry is MLflow on an embedded sqlite store here (the loopback tracking server, the
Pushgateway and Prometheus are in tests/integration/test_drift_monitoring.py).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from components.config import DriftSettings
from components.errors import ComponentError
from components.steps import drift, drift_report
from tests.conftest import FEATURES, register_into

SETTINGS = DriftSettings(categorical_features=["merchant_category"])
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def shifted(frame: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["amount"] = out["amount"] * 1.6
    moved = rng.random(len(out)) < 0.4
    out.loc[moved, "merchant_category"] = rng.choice([4, 7, 11], int(moved.sum()))
    return out


def test_above_1000_rows_the_tests_stay_ks_and_chi_squared(materialized: dict[str, Any]) -> None:
    """Evidently's default would switch to Wasserstein and Jensen-Shannon here; the p-value is
    exactly scipy's two-sample KS on the same columns."""
    reference = pd.read_parquet(materialized["train"])
    current = pd.read_parquet(materialized["holdout"])
    assert len(reference) > 1000 and len(current) > 1000
    result = drift.compare(reference, current, features=FEATURES, settings=SETTINGS)
    methods = {f.feature: f.method for f in result.features}
    assert methods == {name: ("chisquare" if name == "merchant_category" else "ks") for name in FEATURES}
    amount = next(f for f in result.features if f.feature == "amount")
    direct = stats.ks_2samp(reference["amount"], current["amount"])
    assert amount.p_value == pytest.approx(direct.pvalue) and amount.statistic == pytest.approx(direct.statistic)


def test_a_shifted_window_drifts_and_a_sample_of_the_reference_does_not(materialized: dict[str, Any]) -> None:
    reference = pd.read_parquet(materialized["train"])
    control = reference.sample(2000, random_state=1)
    quiet = drift.compare(reference, control, features=FEATURES, settings=SETTINGS)
    assert quiet.detected is False and quiet.drift_share < SETTINGS.drift_share
    loud = drift.compare(reference, shifted(control), features=FEATURES, settings=SETTINGS)
    assert loud.detected is True
    assert {f.feature for f in loud.features if f.drifted} >= {"amount", "merchant_category"}
    assert "amount" in loud.summary() and loud.most_drifted(2)[0].feature in ("amount", "merchant_category")


def test_a_category_the_reference_never_saw_is_named(materialized: dict[str, Any]) -> None:
    reference = pd.read_parquet(materialized["train"])
    current = reference.sample(1000, random_state=2).copy()
    current.loc[current.index[:50], "merchant_category"] = 99
    result = drift.compare(reference, current, features=FEATURES, settings=SETTINGS)
    category = next(f for f in result.features if f.feature == "merchant_category")
    assert category.new_categories == [99] and category.statistic is None and category.drifted


def test_bad_windows_are_refused_with_the_problem_named(materialized: dict[str, Any], tmp_path: Path) -> None:
    reference = pd.read_parquet(materialized["train"])
    with pytest.raises(ComponentError, match=r"lacks the model's feature\(s\) \['amount'\]") as missing:
        drift.compare(reference, reference.drop(columns=["amount"]), features=FEATURES, settings=SETTINGS)
    assert missing.value.exit_code == 2
    empty_feature = reference.head(100).assign(amount=np.nan)
    with pytest.raises(ComponentError, match=r"\['amount'\] have no values in the current window"):
        drift.compare(reference, empty_feature, features=FEATURES, settings=SETTINGS)
    wrong = DriftSettings(categorical_features=["merchant"])
    with pytest.raises(ComponentError, match=r"categorical_features names \['merchant'\]"):
        drift.compare(reference, reference.head(100), features=FEATURES, settings=wrong)
    reference.head(0).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(ComponentError, match="has no rows"):
        drift.read_current(str(tmp_path / "empty.parquet"))


def _reference(days_old: float) -> drift.Reference:
    return drift.Reference(
        model="m", version=3, run_id="r", registered_at=NOW - dt.timedelta(days=days_old), features=[], frame=None
    )  # type: ignore[arg-type]


def test_the_decision_and_its_reason(materialized: dict[str, Any]) -> None:
    reference = pd.read_parquet(materialized["train"])
    quiet = drift.compare(reference, reference.sample(2000, random_state=1), features=FEATURES, settings=SETTINGS)
    loud = drift.compare(reference, shifted(reference.sample(2000, random_state=1)), features=FEATURES,
                         settings=SETTINGS)  # fmt: skip
    key = drift.retrain_key("fraud", NOW, "Europe/Amsterdam")
    assert key == "fraud@2026-12-01"

    def decide(**changes: Any) -> dict[str, Any]:
        arguments: dict[str, Any] = dict(result=quiet, reference=_reference(2), settings=SETTINGS, force=False,
                                         now=NOW, claimed_by=None, key=key)  # fmt: skip
        return drift.decide(**(arguments | changes))

    assert decide()["retrain"] is False and decide()["reason"].startswith("no retrain needed: 0 of 6")
    assert decide(result=loud)["retrain"] is True and decide(result=loud)["reason"].startswith("drift: ")
    old = decide(reference=_reference(45))
    assert old["retrain"] is True and "v3 is 45.0 days old (max_model_age 30d)" in old["reason"]
    none = decide(result=None, reference=None)
    assert none["retrain"] is True and none["reason"].startswith("no champion yet")
    claimed = decide(result=loud, claimed_by="fraud-nightly-123")
    assert claimed["retrain"] is False and "already retrained by fraud-nightly-123" in claimed["reason"]
    assert decide(force=True, claimed_by="x")["retrain"] is True


def _register(trained: dict[str, Path], evaluated: dict[str, Path], out: Path, home: Path, **extra: Any) -> Any:
    return register_into(
        out, home, trained["model"], trained["metadata"], evaluated["metrics"], model_name="drift-model", **extra
    )


@pytest.fixture()
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "registry"
    home.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    return home


def test_the_reference_is_found_through_the_registry_alone(
    trained: dict[str, Path],
    evaluated: dict[str, Path],
    materialized: dict[str, Any],
    registry_home: Path,
    tmp_path: Path,
) -> None:
    from components.platform import model_registry

    mlflow = model_registry.client()
    with pytest.raises(drift.NoChampion, match="no registered model 'drift-model'"):
        drift.find_reference(mlflow, "drift-model")
    summary = _register(trained, evaluated, tmp_path, registry_home, train_set=str(materialized["train"]))
    with pytest.raises(drift.NoChampion, match=r"has no champion to compare with \(aliases: challenger->v1\)"):
        drift.find_reference(mlflow, "drift-model")
    mlflow.set_registered_model_alias("drift-model", "champion", str(summary["version"]))
    reference = drift.find_reference(mlflow, "drift-model")
    metadata = json.loads(trained["metadata"].read_text())
    assert reference.version == 1 and reference.features == metadata["features"]
    assert len(reference.frame) == len(pd.read_parquet(materialized["train"]))


def test_a_version_registered_without_its_training_set_is_refused(
    trained: dict[str, Path], evaluated: dict[str, Path], registry_home: Path, tmp_path: Path
) -> None:
    from components.platform import model_registry

    _register(trained, evaluated, tmp_path, registry_home)  # no train_set: as before drift monitoring
    with pytest.raises(ComponentError, match="has no training set artifact") as refused:
        drift.find_reference(model_registry.client(), "drift-model", version=1)
    assert "--force-retrain" in refused.value.fix


def test_mlops_drift_exits_0_3_or_2(
    trained: dict[str, Path],
    evaluated: dict[str, Path],
    materialized: dict[str, Any],
    registry_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlops.cli import main

    reference = pd.read_parquet(materialized["train"])
    reference.sample(2000, random_state=1).to_parquet(tmp_path / "control.parquet")
    shifted(reference.sample(2000, random_state=1)).to_parquet(tmp_path / "drifted.parquet")
    arguments = ["drift", "fraud", "--out", str(tmp_path / "report")]
    assert main([*arguments, "--current", str(tmp_path / "control.parquet")]) == 2  # nothing registered yet
    assert "fraud-detector" in capsys.readouterr().err
    _register(trained, evaluated, tmp_path, registry_home, train_set=str(materialized["train"]))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{registry_home}/mlflow.db")
    client.rename_registered_model("drift-model", "fraud-detector")
    client.set_registered_model_alias("fraud-detector", "champion", "1")
    assert main([*arguments, "--current", str(tmp_path / "control.parquet")]) == 0
    assert "no drift: 0 of 6 features drifted" in capsys.readouterr().out
    assert main([*arguments, "--current", str(tmp_path / "drifted.parquet")]) == 3
    out = capsys.readouterr().out
    assert "DRIFT: " in out and "amount" in out
    assert (tmp_path / "report" / "report.html").stat().st_size > 1000
    assert main([*arguments, "--current", str(tmp_path / "missing.parquet")]) == 2


def test_parallel_groups_give_the_same_figures_and_one_report(
    materialized: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large windows test feature groups in parallel threads: the same p-values and statistics as
    one preset over every feature, and one HTML page holding each group's report."""
    reference = pd.read_parquet(materialized["train"])
    current = shifted(reference.sample(2000, random_state=1))
    monkeypatch.setenv("MLOPS_DRIFT_THREADS", "1")
    whole = drift.compare(reference, current, features=FEATURES, settings=SETTINGS)
    monkeypatch.setenv("MLOPS_DRIFT_THREADS", "2")
    grouped = drift.compare(reference, current, features=FEATURES, settings=SETTINGS)
    assert len(whole.snapshots) == 1 and len(grouped.snapshots) == 2
    assert [(f.feature, f.method, f.drifted) for f in grouped.features] == [
        (f.feature, f.method, f.drifted) for f in whole.features
    ]
    for one, other in zip(whole.features, grouped.features, strict=True):
        assert one.p_value == pytest.approx(other.p_value) and one.statistic == pytest.approx(other.statistic)
    drift_report.write_report(grouped, str(tmp_path / "report.html"), grouped.summary())
    page = (tmp_path / "report.html").read_text()
    assert page.count("<iframe") == 2 and "Data drift: 2 of 6 features drifted" in page


def test_the_pipelines_outcomes_section_reaches_the_nightlys_realized_reason() -> None:
    """issue 32: `outcomes.min_labelled` and `outcomes.window` set in a pipeline's config.yaml are
    what the nightly judges the champion's realized metric with, not the defaults: the rendered
    drift step carries the section, and the step parses it into the model it hands nightly_reason."""
    import inspect

    from components.outcome_settings import OutcomesSettings
    from pipelines.fraud import pipeline as fraud
    from pipelines.runtime import parse_settings_arguments

    cfg = fraud.DECLARATION.config().with_overrides({"outcomes.min_labelled": 7, "outcomes.window": "3d"})
    from collections import defaultdict

    run: dict[str, Any] = defaultdict(lambda: "x")  # the run's inputs, as placeholders when rendering
    rendered = fraud.DECLARATION.parameters(cfg, run, "pipelines.fraud")["drift"]
    assert rendered["outcomes"] == cfg.outcomes.model_dump() and rendered["outcomes"]["min_labelled"] == 7
    parsed = parse_settings_arguments("components.steps.drift:drift", {"outcomes": rendered["outcomes"]})
    assert parsed["outcomes"] == OutcomesSettings(min_labelled=7, window="3d")
    assert "settings=outcomes" in inspect.getsource(drift.drift)  # what drift hands nightly_reason
    with pytest.raises(ComponentError, match="min_labeled"):  # a misspelt field is refused by name
        parse_settings_arguments("components.steps.drift:drift", {"outcomes": {"min_labeled": 7}})
