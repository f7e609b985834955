"""The drift step's figures for Prometheus: the metric families it defines and the push.

Split from components/steps/drift.py (issue 30: the drift check and its publishing apart; drift.py was
over 500 lines). This module is light on purpose: pipelines/tenant_monitoring.py reads METRICS to
render the scrape's keep-list, and pipelines/argo_metrics.py names the same gauges, without
importing Evidently or pandas.

Where the figures go (issue 29): each pipelines namespace has its own Pushgateway
(pipelines/tenant_monitoring.py), the URL in the namespace's mlops-platform ConfigMap. The push
group is (pipeline, model) under job `mlops-drift`, and carries no `namespace`: the scrape sets
`namespace` from where the Pushgateway runs, and a pushed one could only be a forgery (a pricing
pod once pushed `namespace/fraud` to the shared gateway and paged fraud's owner).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

from components.platform import pushgateway_client

if TYPE_CHECKING:
    from components.steps.drift import DriftResult, Reference

__all__ = [
    "FEATURES_DRIFTED",
    "HEARTBEAT",
    "JOB",
    "METRICS",
    "P_VALUE",
    "SHARE",
    "STEP",
    "THRESHOLD",
    "grouping",
    "push_metrics",
]

STEP = "drift"
JOB = "mlops-drift"
# The metrics, Prometheus-style. Labels: pipeline, model, version (+ feature, method on the
# per-feature ones); the scrape adds namespace. Bounded: one push group per (pipeline, model)
# replaces the previous night's whole, so an old version's series leave when the next push lands.
METRICS = {
    "mlops_drift_share": "Share of the model's features whose drift test rejects the reference distribution.",
    "mlops_drift_share_threshold": "The drift share at or above which the pipeline retrains (drift.drift_share).",
    "mlops_drift_detected": "1 when the drift share reached the threshold, else 0.",
    "mlops_feature_drift_p_value": "p-value of the feature's drift test (KS or chi-squared).",
    "mlops_feature_drift_statistic": "The feature's test statistic: KS distance, or chi-squared.",
    "mlops_drift_current_rows": "Rows in the compared window.",
    "mlops_champion_age_seconds": "Age of the compared version, from its registration.",
    "mlops_drift_last_run_timestamp_seconds": "When the drift step last pushed (the nightly's heartbeat).",
}
SHARE = "mlops_drift_share"
THRESHOLD = "mlops_drift_share_threshold"
HEARTBEAT = "mlops_drift_last_run_timestamp_seconds"
"""DriftMetricsMissing and DriftMetricsAbsent (manifests/monitoring/prometheus-rules.yaml) read it."""
P_VALUE = "mlops_feature_drift_p_value"
"""DriftPValueNaN reads it."""
FEATURES_DRIFTED = "mlops_drift_features_drifted"
"""Exported by Argo's controller only (pipelines/argo_metrics.py): the step's output parameter."""


def grouping(pipeline: str, model: str) -> dict[str, str]:
    """The push group under job JOB: no namespace (the scrape sets it from the target)."""
    return {"pipeline": pipeline, "model": model}


def push_metrics(url: str, result: DriftResult, reference: Reference, *, pipeline: str, now: dt.datetime) -> None:
    """The figures to the namespace's Pushgateway, one group per (pipeline, model), replaced whole."""
    from prometheus_client import CollectorRegistry, Gauge

    collectors = CollectorRegistry()
    base = ["pipeline", "model", "version"]
    gauges = {
        name: Gauge(name, help_text, base + (["feature", "method"] if "_feature_" in name else []), registry=collectors)
        for name, help_text in METRICS.items()
    }
    labels = {"pipeline": pipeline, "model": reference.model, "version": str(reference.version)}
    gauges[SHARE].labels(**labels).set(result.drift_share)
    gauges[THRESHOLD].labels(**labels).set(result.threshold)
    gauges["mlops_drift_detected"].labels(**labels).set(1.0 if result.detected else 0.0)
    gauges["mlops_drift_current_rows"].labels(**labels).set(result.current_rows)
    gauges["mlops_champion_age_seconds"].labels(**labels).set(reference.age_seconds(now))
    gauges[HEARTBEAT].labels(**labels).set(now.timestamp())
    for feature in result.features:
        extra = {**labels, "feature": feature.feature, "method": feature.method}
        gauges[P_VALUE].labels(**extra).set(feature.p_value)
        statistic = math.inf if feature.statistic is None else feature.statistic
        gauges["mlops_feature_drift_statistic"].labels(**extra).set(statistic)
    pushgateway_client.push(
        STEP, url, job=JOB, grouping=grouping(pipeline, reference.model), registry=collectors, what="the drift figures"
    )
