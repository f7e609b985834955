"""Each pipelines namespace's own Pushgateway and its scrape (pipelines/tenant_monitoring.py):
valid against the Prometheus Operator's CRD, and the series it stores are the ones the promtool
cases (prometheus-rules.test.yaml) feed the rules, a forged push included (issue 29)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
    target_relabelings,
)
from tests.monitoring.prometheus_scrape_without_prometheus import relabel, stored, target_labels

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_CASES = Path(__file__).parent / "prometheus-rules.test.yaml"


def _series(group: str) -> list[dict[str, str]]:
    """The input series of one promtool test group, as label sets with `__name__`."""
    tests = yaml.safe_load(PROMTOOL_CASES.read_text())
    (test,) = [test for test in tests["tests"] if test["name"] == group]
    found = []
    for entry in test["input_series"]:
        name, body = re.fullmatch(r"(\w+)\{(.*)\}", entry["series"]).groups()  # type: ignore[union-attr]
        found.append({"__name__": name, **dict(re.findall(r'(\w+)="([^"]*)"', body))})
    return found


def _scrape(namespace: str, address: str, samples: list[dict[str, str]], *, honor_labels: bool = False) -> list[Any]:
    """What Prometheus stores when the ServiceMonitor's rules scrape `samples` from `namespace`'s
    Pushgateway (the operator's own job label before the relabeling)."""
    (endpoint,) = service_monitor(pushgateway(namespace))["spec"]["endpoints"]
    discovered = {"__meta_kubernetes_namespace": namespace, "__address__": address, "job": "pushgateway"}
    target = target_labels(discovered, [rule.prometheus() for rule in target_relabelings()])
    assert target is not None
    rules = [rule.prometheus() for rule in metric_relabelings()]
    assert endpoint["honorLabels"] is False and endpoint["metricRelabelings"] == [
        r.operator() for r in metric_relabelings()
    ]
    return [stored(sample, target, rules, honor_labels=honor_labels) for sample in samples]


def test_the_scrape_stand_in_on_known_cases() -> None:
    """The stand-in for Prometheus's scrape, on answers Prometheus's documentation gives."""
    assert relabel({"a": "x", "b": "y"}, [{"source_labels": ["a", "b"], "target_label": "c"}]) == {
        "a": "x", "b": "y", "c": "x;y"
    }  # fmt: skip
    assert relabel({"__name__": "up"}, [{"action": "keep", "source_labels": ["__name__"], "regex": "u"}]) is None
    assert relabel({"exported_job": "j", "job": "k"}, [{"action": "labeldrop", "regex": "exported_.+"}]) == {"job": "k"}
    assert stored({"job": "pushed", "x": "1"}, {"job": "scrape"}, [], honor_labels=False) == {
        "job": "scrape", "exported_job": "pushed", "x": "1"
    }  # fmt: skip
    assert stored({"job": "pushed"}, {"job": "scrape"}, [], honor_labels=True) == {"job": "pushed"}
    rename = [{"source_labels": ["__meta_x"], "target_label": "ns"}]
    assert target_labels({"__address__": "h:1", "__meta_x": "n"}, rename) == {"ns": "n", "instance": "h:1"}


def test_a_push_forged_in_pricings_namespace_is_stored_as_pricings(schemas_dir: Path) -> None:
    """issue 29 (forged alerts): a pricing pod pushed `mlops_drift_share 1` with namespace="fraud"
    and honor_labels kept it: ModelDriftDetected paged fraud's owner. Positive control first:
    fraud's own push, scraped from fraud's Pushgateway, is stored exactly as the promtool drift
    case feeds it. Then the forgery, pushed to the only Pushgateway pricing reaches (its own):
    stored with namespace="pricing" and no exported_namespace, exactly the series of the promtool
    case that shows ModelDriftDetected naming pricing; a pushed platform family is not stored at
    all. Then the scrape broken on purpose (honor_labels, as before): the forgery is fraud's."""
    fraud_address, pricing_address = "10.0.3.7:9091", "10.0.4.2:9091"
    pushed = {"job": "mlops-drift", "instance": "", "pipeline": "fraud", "model": "fraud-detector", "version": "3"}
    own = [{"__name__": "mlops_drift_share", **pushed}, {"__name__": "mlops_drift_share_threshold", **pushed}]
    expected_own = [s for s in _series("drift, as the drift step pushes it") if s["namespace"] == "fraud"]
    for series in _scrape("fraud", fraud_address, own):
        assert series in expected_own
    forged = [{**sample, "namespace": "fraud"} for sample in own]
    platform = {
        "__name__": "argo_workflows_cronworkflows_triggered_total",
        "namespace": "fraud",
        "name": "fraud-nightly",
    }
    scraped = _scrape("pricing", pricing_address, [*forged, platform])
    assert scraped == [*_series("a drift push forged in pricing's namespace"), None]
    assert all(series["job"] == SCRAPE_JOB for series in scraped if series)
    honored = _scrape("pricing", pricing_address, forged, honor_labels=True)
    assert {series["namespace"] for series in honored if series} == {"fraud"}


def test_the_pushgateway_objects_validate_against_the_operators_crd(schemas_dir: Path) -> None:
    """The ServiceMonitor against the Prometheus Operator's CRD in the schema folder (as mlops lint
    checks every custom kind), with the control that the schema refuses a wrong field."""
    from mlops.lint import _check, _crd_schema

    schema = _crd_schema("monitoring.coreos.com", "ServiceMonitor", "v1")
    assert schema is not None
    document = service_monitor(pushgateway("fraud"))
    assert _check(document, schema) is None
    (endpoint,) = document["spec"]["endpoints"]
    broken = {**document, "spec": {**document["spec"], "endpoints": [{**endpoint, "honorLabels": "no"}]}}
    assert "honorLabels" in str(_check(broken, schema))
    assert [o["kind"] for o in namespace_pushgateway("fraud")] == [
        "Deployment", "Service", "NetworkPolicy", "NetworkPolicy", "ServiceMonitor"
    ]  # fmt: skip


def test_one_source_for_the_families_the_scrape_keeps_and_who_scrapes() -> None:
    """The keep-list is the families the code pushes (components/drift_metrics.py METRICS and
    components/notify.py's notices), the loopback scrape uses the same rules, and required-flows'
    `prometheus` endpoint is the one the NetworkPolicy admits."""
    from components import drift_metrics, notify

    assert set(pushed_families()) == {*drift_metrics.METRICS, notify.GATE_FAILED, notify.RUN_FAILED}
    (keep, drop) = metric_relabelings()
    assert all(re.fullmatch(keep.regex, name) for name in pushed_families())
    assert not re.fullmatch(keep.regex, "push_time_seconds") and re.fullmatch(drop.regex, "exported_namespace")
    loopback = prometheus_scrape_config("fraud", "127.0.0.1:9091")
    assert loopback["metric_relabel_configs"] == [rule.prometheus() for rule in metric_relabelings()]
    assert loopback["honor_labels"] is False and loopback["static_configs"][0]["labels"] == {"namespace": "fraud"}
    flows = yaml.safe_load((REPO / "manifests" / "base" / "network" / "required-flows.yaml").read_text())
    assert flows["endpoints"]["prometheus"] == {"namespace": PROMETHEUS.namespace, "labels": PROMETHEUS.labels}
