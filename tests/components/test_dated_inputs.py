"""Dated inputs (components/dated_inputs.py): a data URI templated on the run's logical date.

Known cases for each form the date arrives in (a day, Argo's RFC 3339 scheduled time in UTC or in
an offset, an orchestrator variable left unsubstituted), each placeholder, and the refusals: an
unknown placeholder at config load, a dated URI with no date, a date that is none.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from components.config import parse_config
from components.dated_inputs import dated, is_dated, logical_date, resolve
from components.errors import ComponentError
from pipelines.local import declaration

TEMPLATE = "s3://churn-data/{date}/extract.parquet"


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-12-04", dt.date(2026, 12, 4)),
        ("2026-12-04T02:00:00Z", dt.date(2026, 12, 4)),  # Argo's scheduledTime in UTC
        ("2026-12-04T00:30:00+01:00", dt.date(2026, 12, 4)),  # the calendar date in its own offset
        ("2026-12-03T23:30:00-05:00", dt.date(2026, 12, 3)),
        ("", None),
        ("  ", None),
    ],
)
def test_each_form_of_the_logical_date(text: str, day: dt.date | None) -> None:
    assert logical_date(text) == day


@pytest.mark.parametrize("text", ["04/12/2026", "2026-13-01", "yesterday", "2026-12-4"])
def test_a_date_that_is_none_is_a_permanent_error_naming_the_form(text: str) -> None:
    with pytest.raises(ComponentError) as refused:
        logical_date(text, step="validate")
    assert refused.value.exit_code == 2
    assert "YYYY-MM-DD" in str(refused.value) and repr(text) in str(refused.value)


def test_an_unsubstituted_orchestrator_variable_is_named_as_such() -> None:
    """A CronWorkflow whose controller left {{workflow.scheduledTime}} in place must not read a URI
    with that text in it: the step stops, saying where the date should have come from."""
    with pytest.raises(ComponentError, match="never substituted") as refused:
        resolve(TEMPLATE, "{{workflow.scheduledTime}}", step="materialize")
    assert "mlops submit --date" in str(refused.value)


def test_every_placeholder_is_filled() -> None:
    day = dt.date(2026, 3, 7)
    template = "s3://b/year={year}/month={month}/day={day}/{date}-{date_nodash}.parquet"
    assert dated(template, day) == "s3://b/year=2026/month=03/day=07/2026-03-07-20260307.parquet"


def test_resolve_fills_a_dated_uri_and_leaves_an_undated_one() -> None:
    assert resolve(TEMPLATE, "2026-12-04T02:00:00Z", step="validate") == "s3://churn-data/2026-12-04/extract.parquet"
    assert resolve("s3://fraud-data/latest.parquet", "2026-12-04", step="validate") == "s3://fraud-data/latest.parquet"
    assert resolve("s3://fraud-data/latest.parquet", "", step="validate") == "s3://fraud-data/latest.parquet"
    assert not is_dated("s3://fraud-data/{{literal}}.parquet")  # doubled braces are text


def test_a_dated_uri_without_a_date_is_refused_naming_the_fix() -> None:
    with pytest.raises(ComponentError) as refused:
        resolve(TEMPLATE, "", step="validate")
    assert refused.value.exit_code == 2
    assert "--date" in str(refused.value) and TEMPLATE in str(refused.value)


def _config_with(raw_data: str) -> dict[str, Any]:
    data: dict[str, Any] = declaration("fraud").config().model_dump(by_alias=True, mode="json")
    data["cluster"]["raw_data"] = raw_data
    return data


def test_the_config_accepts_a_dated_uri() -> None:
    cfg = parse_config(_config_with(TEMPLATE), source="test")
    assert cfg.cluster.raw_data == TEMPLATE


@pytest.mark.parametrize("bad", ["s3://b/{dat}/x.parquet", "s3://b/{date:%Y}/x.parquet", "s3://b/{date/x.parquet"])
def test_the_config_refuses_what_is_not_a_date_placeholder(bad: str) -> None:
    """Refused when the config loads, before any run: a typo would otherwise reach every pod."""
    with pytest.raises(ComponentError) as refused:
        parse_config(_config_with(bad), source="test")
    message = str(refused.value)
    assert "raw_data" in message and "{date}" in message


def test_mlops_run_refuses_a_dated_data_path_without_a_date_before_any_step(tmp_path: Path) -> None:
    """The CLI checks the date and fills --data before it starts the pipeline: nothing runs, nothing
    is written under MLOPS_HOME, and the error names the flag."""
    from tests.cli_runner import mlops

    home = tmp_path / "home"
    environment = {**os.environ, "MLOPS_HOME": str(home)}
    template = str(tmp_path / "{date}" / "events.parquet")
    undated = mlops("run", "fraud", "--data", template, env=environment)
    assert undated.returncode == 2, undated.stdout + undated.stderr
    assert "--date" in undated.stdout + undated.stderr and "kfp-runs" not in {p.name for p in home.glob("*")}
    bad = mlops("run", "fraud", "--data", template, "--date", "12/01/2026", env=environment)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stdout + bad.stderr
