"""Realized metrics against the gate: the push that feeds ModelPerformanceDegraded, and the nightly's reason.

Issue 32 item 3. A version that passed its gate on the holdout may decay once it serves; the realized
metrics (components/platform/outcomes.py `realized`) measure it on late labels, and this module judges
them against the gate the pipeline holds candidates to (evaluate.gate_metric, evaluate.threshold),
only with at least outcomes.min_labelled labelled decisions (fewer: noise, reported but not judged).

- `gate_margin(row, metric, threshold)`: the realized gate metric's distance past the threshold, signed
  so that below zero is worse than the gate (value - threshold for AUCs, threshold - value for errors);
  None when the version's realized metrics do not include the gate metric (log_loss, r2: not realized).
- `push(rows, ...)`: through the tenant's own push path (components/platform/pushgateway_client.push,
  the one notify and the drift figures use, to MLOPS_PUSHGATEWAY_URL), one group per (pipeline,
  kind=realized-metrics) replaced whole by each push, so a version no longer labelled stops alerting:
  `mlops_model_realized_<metric>{model,version,role}` per computed metric,
  `mlops_model_realized_labelled`, and, where the gate metric was realized, `..._gate_margin{metric}` and
  `..._min_labelled`. The rule (manifests/monitoring/prometheus-rules.yaml) fires on a margin below 0
  with labelled >= min_labelled; `pipeline` (the group's) routes it to the pipeline's owner.
- `below_gate(...)`: the nightly's retrain reason "realized <metric> below gate", or None; no log, no
  outcomes, or too few labels give None and never fail the run. `nightly_reason` is what the drift step
  calls: the champion's own gate (its run's metrics.json) over the trailing `outcomes.window`, judged with
  `outcomes.min_labelled` labels (the settings' defaults until the drift op is handed the section); it
  pushes the night's rows too, so the alert's figures stay fresh without anyone running --push.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.errors import ComponentError
from components.outcome_settings import OutcomesSettings
from components.platform.outcomes import GATE_MARGIN, LABELLED, METRICS, MIN_LABELLED, PREFIX, realized
from components.train_settings import LOWER_IS_BETTER

__all__ = ["JOB", "KIND", "below_gate", "gate_margin", "judge", "nightly_reason", "push"]

JOB = "mlops-outcomes"
KIND = "realized-metrics"
_HELP = {
    "roc_auc": "ROC AUC of the version's labelled decisions (late outcomes joined to the decision log).",
    "pr_auc": "Average precision of the version's labelled decisions.",
    "brier": "Brier score of the version's labelled decisions.",
    "positive_rate": "Share of the version's labelled decisions whose outcome was positive.",
    "mae": "Mean absolute error of the version's labelled decisions.",
    "rmse": "Root mean squared error of the version's labelled decisions.",
    "mape": "Mean absolute percentage error of the version's labelled decisions (labels with |y| >= 1).",
    "accuracy": "Accuracy of the version's labelled decisions.",
}


def gate_margin(row: Mapping[str, Any], metric: str, threshold: float) -> float | None:
    """How far the realized gate metric is past its threshold (below 0: worse than the gate), or None."""
    value = row.get(metric)
    if not isinstance(value, int | float):
        return None
    return float(threshold - value) if metric in LOWER_IS_BETTER else float(value - threshold)


def push(
    rows: Sequence[Mapping[str, Any]],
    *,
    pipeline: str,
    gate_metric: str,
    threshold: float,
    min_labelled: int,
    step: str = "outcomes",
) -> str:
    """Push the realized metrics as gauges; the Pushgateway's URL, or "" with none configured."""
    from prometheus_client import CollectorRegistry, Gauge

    from components.platform import pushgateway_client, services

    url = services.settings().pushgateway_url
    if not url:
        return ""
    collectors = CollectorRegistry()
    names = ["model", "version", "role"]
    gauges = {m: Gauge(PREFIX + m, _HELP[m], names, registry=collectors) for ms in METRICS.values() for m in ms}
    labelled = Gauge(LABELLED, "Labelled decisions of the version in the window.", names, registry=collectors)
    margin = Gauge(GATE_MARGIN, "The realized gate metric past its threshold (below 0: worse than the gate).",
                   [*names, "metric"], registry=collectors)  # fmt: skip
    least = Gauge(MIN_LABELLED, "Labelled decisions needed before the realized gate metric is judged.", names,
                  registry=collectors)  # fmt: skip
    for row in rows:
        who = {"model": str(row["model"]), "version": str(row["version"]), "role": str(row["role"])}
        labelled.labels(**who).set(int(row["labelled"]))
        for metric, gauge in gauges.items():
            if isinstance(row.get(metric), int | float):
                gauge.labels(**who).set(float(row[metric]))
        distance = gate_margin(row, gate_metric, threshold)
        if distance is not None:
            margin.labels(**who, metric=gate_metric).set(distance)
            least.labels(**who).set(min_labelled)
    grouping = {"pipeline": pipeline, "kind": KIND}
    pushgateway_client.push(step, url, job=JOB, grouping=grouping, registry=collectors, what="the realized metrics")
    return url


def _trailing(model: str, window_seconds: int, now: dt.datetime, root: str | None) -> list[dict[str, Any]] | None:
    """The realized rows over the trailing window ([] when nothing is labelled); None, said on stderr,
    when the log or its outcomes cannot be read (a store down, a file pyarrow refuses): not the same
    answer as "nothing labelled", which clears the pushed figures."""
    import sys

    from components.platform.decisions import decision_log_root

    try:
        where = decision_log_root(root)
        since = (now - dt.timedelta(seconds=window_seconds)).isoformat()
        return realized(where, model, since, now.isoformat())
    except (
        ComponentError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
    ) as error:  # pyarrow's ArrowInvalid is a ValueError
        print(f"realized metrics of {model} not read ({type(error).__name__}: {error}); the nightly judges "
              "without them and leaves the pushed figures as they were", file=sys.stderr)  # fmt: skip
        return None


def judge(
    rows: Sequence[Mapping[str, Any]], *, gate_metric: str, threshold: float, min_labelled: int, version: int | None
) -> str | None:
    """ "realized <metric> below gate: ..." when `version` (None: the newest version with enough labels) has
    at least `min_labelled` labelled decisions in `rows` and its realized gate metric is worse than the
    threshold; else None (a gate metric that is not realized, log_loss or r2, is never judged)."""
    judged = [
        r
        for r in rows
        if int(r["labelled"]) >= min_labelled
        and gate_margin(r, gate_metric, threshold) is not None
        and (version is None or str(r["version"]) == str(version))
    ]
    if not judged:
        return None
    latest = max(judged, key=lambda r: (str(r["version"]).zfill(12), int(r["labelled"])))
    distance = gate_margin(latest, gate_metric, threshold)
    if distance is None or distance >= 0:
        return None
    direction = "<=" if gate_metric in LOWER_IS_BETTER else ">="
    return (
        f"realized {gate_metric} below gate: v{latest['version']} ({latest['role']}) realized {gate_metric}"
        f" {latest[gate_metric]:.4f} on {latest['labelled']} labelled decisions, the gate requires"
        f" {direction} {threshold}"
    )


def below_gate(
    model: str,
    *,
    gate_metric: str,
    threshold: float,
    min_labelled: int,
    window_seconds: int,
    now: dt.datetime,
    version: int | None = None,
    root: str | None = None,
) -> str | None:
    """`judge` on the realized rows of the trailing window of the log at `root` (None: where
    decision_log_root says). No log, no outcomes or an unreadable store give None: it never fails a run."""
    rows = _trailing(model, window_seconds, now, root)
    if rows is None:
        return None
    return judge(rows, gate_metric=gate_metric, threshold=threshold, min_labelled=min_labelled, version=version)


def nightly_reason(
    mlflow: Any,
    model: str,
    version: int,
    run_id: str,
    *,
    now: dt.datetime,
    pipeline: str = "",
    settings: OutcomesSettings | None = None,
) -> str | None:
    """What the drift step asks each night: the champion's (`version`, trained by `run_id`) realized gate
    metric over the trailing `outcomes.window` judged against the gate evaluate held it to (its run's
    metrics.json); None when that gate cannot be read or nothing is labelled. With `pipeline`, the rows
    are also pushed (`push`), so ModelPerformanceDegraded sees each night's figures without a person
    running `mlops outcomes metrics --push`; nothing labelled pushes an empty group (the old figures stop
    paging), an unreadable store pushes nothing and judges nothing (said on stderr)."""
    from mlflow.exceptions import MlflowException

    from components.config import duration_seconds

    try:
        with tempfile.TemporaryDirectory(prefix="mlops-gate-") as tmp:
            gate = json.loads(Path(mlflow.download_artifacts(run_id, "metrics.json", tmp)).read_text())["gate"]
        metric, threshold = str(gate["metric"]), float(gate["threshold"])
    except (MlflowException, OSError, KeyError, TypeError, ValueError):
        return None
    chosen = settings or OutcomesSettings()
    rows = _trailing(model, duration_seconds(chosen.window), now, None)
    if rows is None:
        return None
    if pipeline:  # nothing labelled in the window pushes an empty group: yesterday's figures stop paging
        try:
            push(rows, pipeline=pipeline, gate_metric=metric, threshold=threshold,
                 min_labelled=chosen.min_labelled, step="drift")  # fmt: skip
        except ComponentError as error:
            import sys

            print(f"realized metrics of {model} not pushed: {error}", file=sys.stderr)
    return judge(rows, gate_metric=metric, threshold=threshold, min_labelled=chosen.min_labelled, version=version)
