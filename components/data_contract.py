"""The raw data's contract (docs/data-contract.md): what a pipeline's input must hold, checked all
at once so a team reads every violation in one pass instead of fixing them one run at a time.

materialize refuses data that breaks it with one permanent ComponentError listing each violation
(exit 2, never retried); `mlops check-data` prints the same list before a run. The rules:

- the entity, timestamp and label columns are present, and the timestamp is a timestamp;
- every row has an entity, a timestamp and a label; with `materialize.label_delay`, an event newer
  than the data's newest event minus the delay may wait for its label (`unlabelled_recent`);
- one row per (entity, timestamp), or duplicates that agree on the label;
- every column of the feature service is in the raw data, computed as of each event;
- a feature holds no nulls unless `materialize.fill` names a value for it (filling is opt-in).

Each message below is the one source of its text: the doc quotes them and a test compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from components.config import MaterializeSettings, duration_seconds
from components.errors import ComponentError

__all__ = [
    "MESSAGES",
    "Violation",
    "contract_error",
    "contract_violations",
    "fill_missing",
    "label_cutoff",
    "unfilled_from_counts",
    "unfilled_nulls",
    "unlabelled_recent",
]

MESSAGES = {
    "required-column": (
        "the {kind} column '{column}' is missing",
        "add it to the raw data or set materialize.{setting} to the column that holds it",
    ),
    "timestamp-type": (
        "the timestamp column '{column}' is {dtype}, not a timestamp",
        "store event times as timestamps (timezone-aware UTC, or naive with materialize.timezone set)",
    ),
    "null-key": (
        "the {kind} column '{column}' is null in {rows} rows",
        "drop those rows upstream: an event without its {kind} cannot be joined to its features or served",
    ),
    "null-label": (
        "the label column '{column}' is null in {rows} rows, e.g. {examples}",
        "drop or label those rows upstream: every row needs a label (labels that arrive late: set"
        " materialize.label_delay)",
    ),
    "late-label": (
        "the label column '{column}' is null in {rows} rows older than materialize.label_delay ({delay}: events at"
        " or before {cutoff}), e.g. {examples}",
        "label those rows or drop them upstream: only events after the cut-off may wait for their label (or"
        " lengthen materialize.label_delay)",
    ),
    "conflicting-duplicates": (
        "{pairs} ({entity}, {timestamp}) pairs appear more than once with different labels, e.g. {example}",
        "keep one row per entity and timestamp, or make its duplicates agree on the label",
    ),
    "missing-feature": (
        "the feature '{column}' of feature service '{service}' is not in the raw data",
        "compute it upstream as of each event and add the column (the raw data holds every feature-view column)",
    ),
    "unfilled-nulls": (
        "the feature '{column}' is null in {rows} rows and materialize.fill does not name it",
        "fill it upstream, or opt in with `materialize.fill: {{{column}: <value>}}` in config.yaml",
    ),
    "unknown-fill": (
        "materialize.fill names '{column}', which is not a feature of feature service '{service}'",
        "remove it from materialize.fill or correct its name (features: {features})",
    ),
}
"""Rule -> (problem, fix) templates: the one wording of each violation, rendered by `Violation.of`
and quoted by docs/data-contract.md."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, which column, what is wrong and how to fix it."""

    rule: str
    column: str
    problem: str
    fix: str

    @classmethod
    def of(cls, rule: str, column: str, **values: object) -> Violation:
        problem, fix = MESSAGES[rule]
        return cls(rule, column, problem.format(column=column, **values), fix.format(column=column, **values))

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}"


def contract_violations(frame: pd.DataFrame, settings: MaterializeSettings, features: Sequence[str]) -> list[Violation]:
    """Every way `frame` breaks the contract of a pipeline whose materialize section is `settings`
    and whose feature service reads `features` (request features are columns the request carries)."""
    found: list[Violation] = []
    required: tuple[tuple[str, str, str], ...] = (
        ("entity", settings.entity_column, "entity_column"),
        ("timestamp", settings.timestamp_column, "timestamp_column"),
        ("label", settings.label_column, "label_column"),
    )
    required += tuple(("request feature", column, "request_features") for column in settings.request_features)
    for kind, column, setting in required:
        if column not in frame.columns:
            found.append(Violation.of("required-column", column, kind=kind, setting=setting))
    timestamp = settings.timestamp_column
    if timestamp in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[timestamp]):
        found.append(Violation.of("timestamp-type", timestamp, dtype=frame[timestamp].dtype))
    for kind, column in (("entity", settings.entity_column), ("timestamp", timestamp)):
        if column in frame.columns and (nulls := int(frame[column].isna().sum())):
            found.append(Violation.of("null-key", column, kind=kind, rows=nulls))
    found.extend(_null_labels(frame, settings))
    found.extend(_conflicting_duplicates(frame, settings))
    for feature in features:
        if feature not in frame.columns:
            found.append(Violation.of("missing-feature", feature, service=settings.feature_service))
    found.extend(unfilled_nulls(frame, settings, [f for f in features if f in frame.columns]))
    names = ", ".join(features) or "none"
    for feature in settings.fill:
        if feature not in features:
            found.append(Violation.of("unknown-fill", feature, service=settings.feature_service, features=names))
    return found


def label_cutoff(frame: pd.DataFrame, settings: MaterializeSettings) -> pd.Timestamp | None:
    """The newest event time whose label must be known: the data's newest event minus
    `materialize.label_delay` (measured on the data, not the clock, so a rerun on the same bytes
    decides the same). None without a delay, or without usable event times to measure from."""
    column = settings.timestamp_column
    if settings.label_delay is None or column not in frame.columns:
        return None
    if not pd.api.types.is_datetime64_any_dtype(frame[column]) or frame[column].isna().all():
        return None
    newest: pd.Timestamp = frame[column].max()
    return newest - pd.Timedelta(seconds=duration_seconds(settings.label_delay))


def unlabelled_recent(frame: pd.DataFrame, settings: MaterializeSettings) -> pd.Series:
    """Rows whose label may still be unknown: a null label on an event after `label_cutoff`.
    They feed the offline and online stores, and are left out of training and the holdout."""
    cutoff = label_cutoff(frame, settings)
    if cutoff is None or settings.label_column not in frame.columns:
        return pd.Series(False, index=frame.index)
    recent: pd.Series = frame[settings.label_column].isna() & (frame[settings.timestamp_column] > cutoff)
    return recent


def _null_labels(frame: pd.DataFrame, settings: MaterializeSettings) -> list[Violation]:
    """The null labels that may not wait: all of them without a delay, else those up to the cut-off."""
    label = settings.label_column
    if label not in frame.columns:
        return []
    nulls = frame[label].isna() & ~unlabelled_recent(frame, settings)
    if not nulls.any():
        return []
    examples = _examples(frame[nulls], settings)
    cutoff = label_cutoff(frame, settings)
    if cutoff is None:
        return [Violation.of("null-label", label, rows=int(nulls.sum()), examples=examples)]
    return [
        Violation.of(
            "late-label", label, rows=int(nulls.sum()), delay=settings.label_delay, cutoff=cutoff, examples=examples
        )
    ]


def _examples(rows: pd.DataFrame, settings: MaterializeSettings, count: int = 3) -> str:
    """The first `count` rows in event-time order, named by entity and time (by index if either is missing)."""
    entity, when = settings.entity_column, settings.timestamp_column
    if not {entity, when} <= set(rows.columns):
        return ", ".join(f"row {index}" for index in rows.index[:count])
    first = rows.sort_values(when, kind="stable", na_position="first").head(count)
    return ", ".join(f"{entity}={_plain(key)!r} at {at}" for key, at in zip(first[entity], first[when], strict=True))


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value  # 10, not np.int64(10)


def _conflicting_duplicates(frame: pd.DataFrame, settings: MaterializeSettings) -> list[Violation]:
    keys = [settings.entity_column, settings.timestamp_column]
    label = settings.label_column
    if not set([*keys, label]) <= set(frame.columns):
        return []
    labels = frame.loc[frame.duplicated(keys, keep=False), [*keys, label]]
    if labels.empty:
        return []
    counts = labels.groupby(keys, sort=True, dropna=False)[label].nunique(dropna=False)
    conflicting = counts[counts > 1]
    if conflicting.empty:
        return []
    entity, when = conflicting.index[0]
    example = f"{keys[0]}={_plain(entity)!r} at {when}"
    return [
        Violation.of(
            "conflicting-duplicates", label, pairs=len(conflicting), entity=keys[0], timestamp=keys[1], example=example
        )
    ]


def unfilled_nulls(frame: pd.DataFrame, settings: MaterializeSettings, features: Sequence[str]) -> list[Violation]:
    """A violation per feature of `features` with nulls that `materialize.fill` does not name."""
    nulls = frame[list(features)].isna().sum()
    return unfilled_from_counts({str(feature): int(count) for feature, count in nulls.items()}, settings, features)


def unfilled_from_counts(
    nulls: Mapping[str, int], settings: MaterializeSettings, features: Sequence[str]
) -> list[Violation]:
    """`unfilled_nulls` from null counts per feature (counted out of core, components/steps/point_in_time.py)."""
    return [
        Violation.of("unfilled-nulls", feature, rows=int(nulls[feature]))
        for feature in features
        if nulls[feature] and feature not in settings.fill
    ]


def fill_missing(frame: pd.DataFrame, settings: MaterializeSettings, features: Sequence[str]) -> dict[str, object]:
    """Fill the nulls of the features `materialize.fill` opts in, in place; refuse any other null.

    Returns what was filled, for the lineage record: {feature: {"value": v, "rows": n}}.
    """
    violations = unfilled_nulls(frame, settings, features)
    if violations:
        raise contract_error("materialize", violations, where="the point-in-time join's result")
    filled: dict[str, object] = {}
    for feature in features:
        rows = int(frame[feature].isna().sum())
        if rows and feature in settings.fill:
            frame[feature] = frame[feature].fillna(settings.fill[feature])
            filled[feature] = {"value": settings.fill[feature], "rows": rows}
    return filled


def contract_error(step: str, violations: Sequence[Violation], where: str = "the raw data") -> ComponentError:
    """One permanent error naming every violation, so one run shows all there is to fix."""
    listed = "".join(f"\n  - {violation.problem}" for violation in violations)
    fixes = "".join(f"\n  - {violation.fix}" for violation in violations)
    count = f"{len(violations)} violation{'s' if len(violations) != 1 else ''}"
    return ComponentError(
        step,
        f"{where} breaks the data contract (docs/data-contract.md), {count}:{listed}",
        f"one per violation:{fixes}",
    )
