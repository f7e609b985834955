"""Each pipelines namespace's own Pushgateway and its scrape (pipelines/tenant_monitoring.py):
valid against the Prometheus Operator's CRD, and the series it stores are the ones the promtool
cases (prometheus-rules.test.yaml) feed the rules, a forged push included (issue 29)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.platform_services import pushgateway
from pipelines.tenant_monitoring import (
    PROMETHEUS,
    SCRAPE_JOB,
    metric_relabelings,
    namespace_pushgateway,
    prometheus_scrape_config,
    pushed_families,
    service_monitor,
)
from tests.conftest import REPO
from tests.monitoring.prometheus_scrape_without_prometheus import (
    endpoints_target,
    relabel,
    scrape,
    service_monitor_scrape,
    stored,
    target_labels,
)
from tests.monitoring.promtool_cases import input_series

POD = {"fraud": "pushgateway-6b7f9c-x2k8p", "pricing": "pushgateway-6b7f9c-q4m7d"}
OPERATOR_LABELS = {"service": "pushgateway", "container": "pushgateway", "endpoint": "http"}
"""The target labels the operator's own relabelings add (with `pod`) that the promtool cases leave
out: the rules aggregate them away (`max by (namespace, pipeline, model, version)`, ...)."""


def _scrape(
    namespace: str, address: str, samples: list[dict[str, str]], *, honor_labels: bool | None = None
) -> list[Any]:
    """What Prometheus stores when the operator's scrape config of `namespace`'s rendered
    ServiceMonitor (its generated relabelings, then the ServiceMonitor's) scrapes `samples` from
    the Pushgateway pod behind the rendered Service."""
    objects = {o["kind"]: o for o in namespace_pushgateway(namespace)}
    discovered = endpoints_target(
        objects["Service"], address=address, port="http", pod=POD[namespace], container="pushgateway"
    )
    return scrape(objects["ServiceMonitor"], discovered, samples, honor_labels=honor_labels)


def _less_operator_labels(series: dict[str, str] | None, namespace: str) -> dict[str, str] | None:
    """A stored series less the labels the operator's relabelings add, checked to be exactly these."""
    if series is None:
        return None
    assert {k: series[k] for k in [*OPERATOR_LABELS, "pod"]} == {**OPERATOR_LABELS, "pod": POD[namespace]}
    return {k: v for k, v in series.items() if k not in {*OPERATOR_LABELS, "pod"}}


def test_the_scrape_stand_in_on_known_cases() -> None:
    """The stand-in for Prometheus's scrape and the operator's scrape config, on answers
    Prometheus's and the operator's documentation and code give."""
    assert relabel({"a": "x", "b": "y"}, [{"source_labels": ["a", "b"], "target_label": "c"}]) == {
        "a": "x", "b": "y", "c": "x;y"
    }  # fmt: skip
    assert relabel({"__name__": "up"}, [{"action": "keep", "source_labels": ["__name__"], "regex": "u"}]) is None
    assert relabel({"exported_job": "j", "job": "k"}, [{"action": "labeldrop", "regex": "exported_.+"}]) == {"job": "k"}
    # regexes are fully anchored: `u` matches neither "up" nor "xu"; "u.*" matches "up"
    keep_u = [{"action": "keep", "source_labels": ["__name__"], "regex": "u"}]
    assert relabel({"__name__": "xu"}, keep_u) is None and relabel({"__name__": "u"}, keep_u) == {"__name__": "u"}
    assert relabel({"__name__": "up"}, [{**keep_u[0], "regex": "u.*"}]) == {"__name__": "up"}
    assert relabel({"a_b": "1", "xa_b": "2"}, [{"action": "labeldrop", "regex": "a_.*"}]) == {"xa_b": "2"}
    # a replace whose result is empty removes the target label; a regex that does not match leaves it
    empty = [{"source_labels": ["missing"], "target_label": "job", "regex": "(.*)", "replacement": "$1"}]
    assert relabel({"job": "k"}, empty) == {}
    assert relabel({"job": "k"}, [{**empty[0], "regex": "(.+)"}]) == {"job": "k"}
    # Go's expansion: `${1}` is group 1, `$$` a `$`, `$1z` the group named "1z" (none: empty)
    expand = {"source_labels": ["a"], "target_label": "b", "regex": "(.)(.*)"}
    assert relabel({"a": "xy"}, [{**expand, "replacement": "${1}-$2"}]) == {"a": "xy", "b": "x-y"}
    assert relabel({"a": "xy"}, [{**expand, "replacement": "${1}z$$"}]) == {"a": "xy", "b": "xz$"}
    assert relabel({"a": "xy"}, [{**expand, "replacement": "$1z"}]) == {"a": "xy"}
    assert stored({"job": "pushed", "x": "1"}, {"job": "scrape"}, [], honor_labels=False) == {
        "job": "scrape", "exported_job": "pushed", "x": "1"
    }  # fmt: skip
    assert stored({"job": "pushed"}, {"job": "scrape"}, [], honor_labels=True) == {"job": "pushed"}
    # an empty sample label (the Pushgateway's instance="") is no label: no exported_instance and
    # the target's instance is stored; with honor_labels the empty one wins, so no instance at all
    pushed = {"__name__": "m", "instance": ""}
    assert stored(pushed, {"instance": "h:1"}, [], honor_labels=False) == {"__name__": "m", "instance": "h:1"}
    assert stored(pushed, {"instance": "h:1"}, [], honor_labels=True) == {"__name__": "m"}
    # an exported_ name the sample already has moves the pushed value on to exported_exported_
    assert stored({"job": "a", "exported_job": "b"}, {"job": "t"}, [], honor_labels=False) == {
        "job": "t", "exported_job": "b", "exported_exported_job": "a"
    }  # fmt: skip
    rename = [{"source_labels": ["__meta_x"], "target_label": "ns"}]
    assert target_labels({"__address__": "h:1", "__meta_x": "n"}, rename) == {"ns": "n", "instance": "h:1"}
    # the operator's scrape of a ServiceMonitor with no relabelings of its own: `job` is the
    # Service's name (jobLabel's value when set), `endpoint` the port's name; the target of another
    # port or of a Service the selector does not pick is not scraped
    monitor: dict[str, Any] = {
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}, "endpoints": [{"port": "metrics"}]},
    }
    service = {"metadata": {"name": "web-svc", "namespace": "ns", "labels": {"app.kubernetes.io/name": "web"}}}
    found = endpoints_target(service, address="10.0.0.1:8080", port="metrics", pod="web-1", container="c")
    config = service_monitor_scrape(monitor)
    assert config["job_name"] == "serviceMonitor/ns/m/0" and config["honor_labels"] is False
    assert target_labels(found, config["relabel_configs"], job_name=config["job_name"]) == {
        "job": "web-svc", "namespace": "ns", "service": "web-svc", "pod": "web-1", "container": "c",
        "endpoint": "metrics", "instance": "10.0.0.1:8080",
    }  # fmt: skip
    with_job_label = {**monitor, "spec": {**monitor["spec"], "jobLabel": "app.kubernetes.io/name"}}
    relabeled = service_monitor_scrape(with_job_label)["relabel_configs"]
    assert (target_labels(found, relabeled, job_name="j") or {}).get("job") == "web"
    other_port = {**found, "__meta_kubernetes_endpoint_port_name": "http"}
    other_service = {**found, "__meta_kubernetes_service_label_app_kubernetes_io_name": "api"}
    assert target_labels(other_port, config["relabel_configs"]) is None
    assert target_labels(other_service, config["relabel_configs"]) is None
    selector = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["api", "db"]}]}
    by_expression = service_monitor_scrape({**monitor, "spec": {**monitor["spec"], "selector": selector}})
    assert target_labels(found, by_expression["relabel_configs"]) is None
    assert target_labels(other_service, by_expression["relabel_configs"]) is not None
    with pytest.raises(ValueError, match="path"):
        service_monitor_scrape({**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "m", "path": "/x"}]}})
    with pytest.raises(ValueError, match="labelmap"):
        relabel({"a": "b"}, [{"action": "labelmap", "regex": "a"}])


def test_a_push_forged_in_pricings_namespace_is_stored_as_pricings(schemas_dir: Path) -> None:
    """issue 29 (forged alerts): a pricing pod pushed `mlops_drift_share 1` with namespace="fraud"
    and honor_labels kept it: ModelDriftDetected paged fraud's owner. Scraped as the operator's
    config of the rendered ServiceMonitor scrapes (its own relabelings first, then ours), every
    series carries the operator's `service`, `pod`, `container` and `endpoint` labels, checked
    here to be exactly the Pushgateway's; less those (the rules aggregate them away), the series
    are the promtool cases' own. Positive control first: fraud's own push, scraped from fraud's
    Pushgateway, is stored as the promtool drift case feeds it. Then the forgery (a pushed `pod`
    as well), pushed to the only Pushgateway pricing reaches (its own): stored with
    namespace="pricing", its own pod, and no exported_* label, the series of the promtool case
    that shows ModelDriftDetected naming pricing; a pushed platform family is not stored at all.
    Then the scrape broken on purpose (honor_labels, as before): the forgery is fraud's."""
    fraud_address, pricing_address = "10.0.3.7:9091", "10.0.4.2:9091"
    pushed = {"job": "mlops-drift", "instance": "", "pipeline": "fraud", "model": "fraud-detector", "version": "3"}
    own = [{"__name__": "mlops_drift_share", **pushed}, {"__name__": "mlops_drift_share_threshold", **pushed}]
    expected_own = [s for s in input_series("drift, as the drift step pushes it") if s["namespace"] == "fraud"]
    scraped_own = [_less_operator_labels(series, "fraud") for series in _scrape("fraud", fraud_address, own)]
    assert len(scraped_own) == 2 and all(series in expected_own for series in scraped_own)
    forged = [{**sample, "namespace": "fraud", "pod": "fraud-train-x"} for sample in own]
    platform = {
        "__name__": "argo_workflows_cronworkflows_triggered_total",
        "namespace": "fraud",
        "name": "fraud-nightly",
    }
    scraped = _scrape("pricing", pricing_address, [*forged, platform])
    assert [_less_operator_labels(series, "pricing") for series in scraped] == [
        *input_series("a drift push forged in pricing's namespace"),
        None,
    ]
    assert all(series["job"] == SCRAPE_JOB for series in scraped if series)
    honored = _scrape("pricing", pricing_address, forged, honor_labels=True)
    assert {series["namespace"] for series in honored if series} == {"fraud"}


def test_the_pushgateway_objects_validate_against_the_operators_crd(schemas_dir: Path) -> None:
    """The ServiceMonitor against the Prometheus Operator's CRD in the schema folder (as mlops lint
    checks every custom kind), with the control that the schema refuses a wrong field."""
    from mlops import lint

    document = service_monitor(pushgateway("fraud"))
    assert lint.check(document) is None
    (endpoint,) = document["spec"]["endpoints"]
    broken = {**document, "spec": {**document["spec"], "endpoints": [{**endpoint, "honorLabels": "no"}]}}
    assert "honorLabels" in str(lint.check(broken))
    assert [o["kind"] for o in namespace_pushgateway("fraud")] == [
        "Deployment", "Service", "NetworkPolicy", "NetworkPolicy", "ServiceMonitor",
        "NetworkPolicy", "PodMonitor",  # the transformers' scrape (tests/monitoring/test_transformer_scrape.py)
    ]  # fmt: skip


def test_one_source_for_the_families_the_scrape_keeps_and_who_scrapes() -> None:
    """The keep-list is the families the code pushes (components/steps/drift_metrics.py METRICS and
    components/steps/notify.py's notices, components/platform/outcomes.py's realized metrics), the
    loopback scrape uses the same rules, and required-flows' `prometheus` endpoint is the one the
    NetworkPolicy admits."""
    from components.platform import outcomes
    from components.steps import drift_metrics, notify

    notices = {notify.GATE_FAILED, notify.RUN_FAILED, notify.VERIFY_FAILED, notify.VERIFY_COMPLETED}
    assert outcomes.LABELLED in outcomes.FAMILIES  # what ModelPerformanceDegraded reads is pushed, so kept
    assert set(pushed_families()) == {*drift_metrics.METRICS, *notices, *outcomes.FAMILIES}
    (keep, drop) = metric_relabelings()
    assert all(re.fullmatch(keep.regex, name) for name in pushed_families())
    assert not re.fullmatch(keep.regex, "push_time_seconds") and re.fullmatch(drop.regex, "exported_namespace")
    loopback = prometheus_scrape_config("fraud", "127.0.0.1:9091")
    assert loopback["metric_relabel_configs"] == [rule.prometheus() for rule in metric_relabelings()]
    assert loopback["honor_labels"] is False and loopback["static_configs"][0]["labels"] == {"namespace": "fraud"}
    flows = yaml.safe_load((REPO / "manifests" / "base" / "network" / "required-flows.yaml").read_text())
    assert flows["endpoints"]["prometheus"] == {"namespace": PROMETHEUS.namespace, "labels": PROMETHEUS.labels}
