"""Dated inputs: a dataset URI written as a template on the run's logical date, and that date.

Upstream extracts land at a new URI each day (`s3://churn-data/2026-12-04/extract.parquet`), so
the pipeline never reads bytes that were overwritten under it and `mlops reproduce` can read
them again. `cluster.raw_data` (or `mlops run --data`) names the day with placeholders:

    {date}         2026-12-04
    {date_nodash}  20261204
    {year}         2026
    {month}        12    (two digits)
    {day}          04    (two digits)

The logical date comes from the run: the nightly's scheduled time (Argo's
`{{workflow.scheduledTime}}`, handed to the run as its `logical-date` input), `mlops submit --date`,
`mlops run --date`, or one date of `mlops backfill`. It is the calendar date of that time as
written, in its own offset (a nightly scheduled at 02:00 Europe/Berlin reads that day's extract).

The template is resolved in the step that reads the data (validate, materialize, drift, a team
features step), since run inputs reach a pod as strings; lineage records the resolved URI and
the date, so a dated run is reproduced from exactly the bytes it read.
"""

from __future__ import annotations

import datetime as dt
import re
import string

from components.errors import ComponentError

__all__ = ["PLACEHOLDERS", "check_template", "dated", "is_dated", "logical_date", "resolve"]

PLACEHOLDERS: dict[str, str] = {
    "date": "%Y-%m-%d",
    "date_nodash": "%Y%m%d",
    "year": "%Y",
    "month": "%m",
    "day": "%d",
}
"""Each placeholder a dated URI may hold, and how the logical date fills it (strftime)."""

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _fields(template: str) -> list[tuple[str, str, str | None]]:
    """(field, format spec, conversion) of each `{...}` in the template; ValueError if malformed."""
    return [
        (name, spec or "", conversion)
        for _, name, spec, conversion in string.Formatter().parse(template)
        if name is not None
    ]


def check_template(template: str) -> str:
    """The template, or ValueError naming what is wrong and the placeholders there are. Literal
    braces are written doubled (`{{`), as in str.format."""
    choices = f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)} (components/dated_inputs.py)"
    try:
        fields = _fields(template)
    except ValueError as error:
        raise ValueError(
            f"{template!r} is not a valid URI template ({error}); {choices}, and write a literal brace as {{{{ or }}}}"
        ) from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{template!r} holds {shown}, which is not a date placeholder; {choices}")
    return template


def is_dated(template: str) -> bool:
    """Whether the URI holds a date placeholder (it is checked first)."""
    return bool(_fields(check_template(template)))


def logical_date(text: str, *, step: str = "run") -> dt.date | None:
    """The date a run input names: `YYYY-MM-DD`, or an RFC 3339 time (the calendar date in its
    own offset); None for empty. Anything else is a permanent error naming the forms."""
    value = text.strip()
    if not value:
        return None
    if "{{" in value:
        raise ComponentError(
            step,
            f"the run's logical date is {value!r}, an orchestrator variable that was never substituted",
            "run it from the CronWorkflow (which sets {{workflow.scheduledTime}}) or pass a date: "
            "mlops submit --date YYYY-MM-DD",
        )
    try:
        if _DAY.match(value):
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        raise ComponentError(
            step,
            f"the run's logical date {value!r} is neither a date (YYYY-MM-DD) nor an RFC 3339 time",
            "pass --date 2026-12-04 (or a time such as 2026-12-04T02:00:00+01:00)",
        ) from None


def dated(template: str, day: dt.date) -> str:
    """The template with each placeholder filled from `day` (the template is checked first)."""
    check_template(template)
    return template.format(**{name: day.strftime(pattern) for name, pattern in PLACEHOLDERS.items()})


def resolve(template: str, date_text: str, *, step: str) -> str:
    """The URI a run reads: a dated template filled with the run's logical date, any other URI as
    it is. A dated template with no date, or a date that is not one, is a permanent error."""
    try:
        dated_uri = is_dated(template)
    except ValueError as error:
        raise ComponentError(step, str(error), "fix cluster.raw_data (or --data) in the pipeline's config") from None
    day = logical_date(date_text, step=step)
    if not dated_uri:
        return template
    if day is None:
        raise ComponentError(
            step,
            f"the data URI {template!r} is a template on the run's logical date, and this run has none",
            "pass --date YYYY-MM-DD (mlops run, mlops submit) or -p logical-date=YYYY-MM-DD; the nightly "
            "CronWorkflow passes its scheduled time",
        )
    return dated(template, day)
