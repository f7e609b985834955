"""The scrape of each namespace's scoring transformers (issue 32; pipelines/tenant_monitoring.py):
the PodMonitor is valid against the Prometheus Operator's CRD, the series it stores from the real
transformer's collectors are the decision log's two families and the request log's per-version
figures only, with the pod's namespace and InferenceService whatever the body says, and the decision
log's are the series the promtool case "decision log" feeds DecisionLogDropping and DecisionLogSpilling."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from components.serving.decision_log import RECORDS, SPILL_BYTES, Figures
from components.serving.request_log import BUCKETS, LOG_RECORDS, RequestFigures
from pipelines.tenant_monitoring import (
    SCRAPE_JOB,
    TRANSFORMER_PORT_NAME,
    TRANSFORMER_SCRAPE_JOB,
    namespace_pushgateway,
    scraped_decision_families,
    transformer_metrics_policy,
    transformer_pod_monitor,
)
from tests.conftest import REPO
from tests.monitoring.prometheus_scrape_without_prometheus import pod_monitor_scrape, pod_target, scrape, target_labels
from tests.monitoring.promtool_cases import PROMTOOL_CASES, input_series

RULES = REPO / "manifests" / "monitoring" / "prometheus-rules.yaml"
GROUP = "decision log"
KNATIVE_USER_PORT = {"name": "user-port", "containerPort": 8080, "protocol": "TCP"}
"""The port Knative gives a revision's user container whatever it declared (knative.dev/serving
pkg/apis/serving/v1: UserPortName "user-port", DefaultUserPort 8080)."""
QUEUE_PROXY_PORTS = [
    {"name": "http-queueadm", "containerPort": 8022},
    {"name": "http-autometric", "containerPort": 9090},
    {"name": "http-usermetric", "containerPort": 9091},
    {"name": "queue-port", "containerPort": 8012},
]
"""Knative's queue-proxy ports on the same pod (knative.dev/serving pkg/apis/networking/ports.go)."""
PODS = {
    ("fraud", "fraud-detector"): ("fraud-detector-transformer-00003-deployment-6d8f7c9b5-x2k8p", "10.0.3.21"),
    ("forecast", "forecast-demand"): ("forecast-demand-transformer-00001-deployment-5b7c6d4f8-q4m7d", "10.0.5.14"),
}


def _pod(namespace: str, service: str, *, component: str = "transformer") -> dict[str, Any]:
    """A transformer pod as KServe and Knative label it (KServe: InferenceServicePodLabelKey and
    KServiceComponentLabel; Knative: the revision's own labels)."""
    name, _ = PODS[(namespace, service)]
    revision = name.split("-deployment-")[0]
    labels = {"serving.kserve.io/inferenceservice": service, "component": component}
    labels |= {"serving.knative.dev/revision": revision, "serving.knative.dev/service": f"{service}-{component}"}
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels}}


def _exposition(written: int, spilled: int, dropped: int, spill_bytes: int) -> str:
    """The transformer's /metrics body: the real collectors' exposition (a Figures and a RequestFigures
    with one answered request, on a registry of their own, rendered by prometheus_client as KServe's
    ModelServer renders the default registry)."""
    figures, requests = Figures(), RequestFigures()
    for outcome, count in (("written", written), ("spilled", spilled), ("dropped", dropped)):
        figures.count(outcome, count)
    figures.spill_bytes(spill_bytes)
    requests.observe("fraud-detector", "3", "canary", 200, 0.02)
    registry = CollectorRegistry()
    registry.register(figures)
    registry.register(requests)
    return generate_latest(registry).decode()


def _samples(body: str) -> list[dict[str, str]]:
    return [
        {"__name__": sample.name, **sample.labels}
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    ]


def _scraped(
    namespace: str, service: str, body: str, *, honor_labels: bool | None = None, monitor: dict[str, Any] | None = None
) -> list[dict[str, str] | None]:
    """What Prometheus stores when the operator's config of `namespace`'s rendered PodMonitor
    scrapes `body` from that transformer's `user-port`."""
    _, address = PODS[(namespace, service)]
    target = pod_target(_pod(namespace, service), address=address, container="kserve-container", port=KNATIVE_USER_PORT)
    return scrape(monitor or transformer_pod_monitor(namespace), target, _samples(body), honor_labels=honor_labels)


def test_the_pod_monitor_stand_in_on_known_cases() -> None:
    """The stand-in's PodMonitor config, on answers the operator's generatePodMonitorConfig gives:
    `job` is `<namespace>/<name>`, `endpoint` the port's name, `namespace`/`pod`/`container` from
    discovery; a pod the selector does not pick, another port, a finished pod: no target."""
    monitor: dict[str, Any] = {
        "kind": "PodMonitor",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "podMetricsEndpoints": [{"port": "metrics"}]},
    }
    pod = {"metadata": {"namespace": "ns", "name": "web-1", "labels": {"app": "web"}}}
    port = {"name": "metrics", "containerPort": 9100}
    found = pod_target(pod, address="10.0.0.1", container="c", port=port)
    config = pod_monitor_scrape(monitor)
    assert config["job_name"] == "podMonitor/ns/m/0" and config["metrics_path"] == "/metrics"
    assert target_labels(found, config["relabel_configs"], job_name=config["job_name"]) == {
        "job": "ns/m", "namespace": "ns", "pod": "web-1", "container": "c", "endpoint": "metrics",
        "instance": "10.0.0.1:9100",
    }  # fmt: skip
    other_port = pod_target(pod, address="10.0.0.1", container="c", port={"name": "http", "containerPort": 80})
    no_port = pod_target(pod, address="10.0.0.1", container="c", port=None)
    other_pod = pod_target({"metadata": {**pod["metadata"], "labels": {"app": "api"}}}, address="10.0.0.2",
                           container="c", port=port)  # fmt: skip
    finished = pod_target({**pod, "phase": "Succeeded"}, address="10.0.0.1", container="c", port=port)
    for target in (other_port, no_port, other_pod, finished):
        assert target_labels(target, config["relabel_configs"]) is None, target
    by_number = {**monitor, "spec": {**monitor["spec"], "podMetricsEndpoints": [{"portNumber": 9100}]}}
    relabeled = target_labels(found, pod_monitor_scrape(by_number)["relabel_configs"])
    assert relabeled is not None and "endpoint" not in relabeled
    with pytest.raises(ValueError, match="scheme"):
        pod_monitor_scrape({**monitor, "spec": {**monitor["spec"], "podMetricsEndpoints": [{"scheme": "https"}]}})
    assert config["follow_redirects"] is True  # unset: Prometheus follows a target's 3xx
    not_followed = {
        **monitor,
        "spec": {**monitor["spec"], "podMetricsEndpoints": [{"port": "metrics", "followRedirects": False}]},
    }
    assert pod_monitor_scrape(not_followed)["follow_redirects"] is False


def test_no_scrape_follows_a_redirect() -> None:
    """issue 32, an attacker's read: a pricing pod labelled as a transformer answering its scrape with
    `302 -> <fraud's transformer>:8080/metrics` would have Prometheus fetch fraud's series and store
    them under pricing's namespace (the scrape NetworkPolicy and the mesh rule admit Prometheus
    there). Neither the transformers' PodMonitor, the Pushgateways' ServiceMonitor nor the loopback
    scrape follows one; the stand-in's default (unset) shows what the field prevents."""
    from pipelines.tenant_monitoring import namespace_pushgateway, prometheus_scrape_config
    from tests.monitoring.prometheus_scrape_without_prometheus import service_monitor_scrape

    monitors = [o for o in namespace_pushgateway("pricing") if o["kind"] in ("PodMonitor", "ServiceMonitor")]
    assert {o["kind"] for o in monitors} == {"PodMonitor", "ServiceMonitor"}
    for monitor in monitors:
        scrape = pod_monitor_scrape if monitor["kind"] == "PodMonitor" else service_monitor_scrape
        assert scrape(monitor)["follow_redirects"] is False, monitor["kind"]
        (endpoint,) = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"]["endpoints"]
        unset = {k: v for k, v in endpoint.items() if k != "followRedirects"}
        key = "podMetricsEndpoints" if monitor["kind"] == "PodMonitor" else "endpoints"
        assert scrape({**monitor, "spec": {**monitor["spec"], key: [unset]}})["follow_redirects"] is True
    assert prometheus_scrape_config("pricing", "127.0.0.1:9091")["follow_redirects"] is False


def test_the_transformer_objects_validate_against_the_operators_crd(schemas_dir: Path) -> None:
    """The PodMonitor against the Prometheus Operator's CRD in the schema folder (as mlops lint
    checks every custom kind), with the control that the schema refuses a wrong field; both
    objects are in the namespace's generated file, beside its Pushgateway."""
    from mlops import lint

    document = transformer_pod_monitor("fraud")
    assert lint.check(document) is None
    (endpoint,) = document["spec"]["podMetricsEndpoints"]
    broken = {**document, "spec": {**document["spec"], "podMetricsEndpoints": [{**endpoint, "port": 8080}]}}
    assert "port" in str(lint.check(broken))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in namespace_pushgateway("fraud")]
    assert kinds[-2:] == [("NetworkPolicy", "transformer-metrics-from-prometheus"),
                          ("PodMonitor", "transformer-decision-log")]  # fmt: skip


def test_the_port_scraped_is_the_transformers_and_the_policy_opens_that_port() -> None:
    """The PodMonitor's port is the name Knative gives the user container's port. In Serverless
    promote renders the transformer with no port of its own (Knative refuses names other than http1
    and h2c), so Knative's default (8080) is the one KServe starts it on (--http_port,
    TRANSFORMER_PORT); in RawDeployment nothing names it, so promote declares it under the same
    name. The NetworkPolicy opens exactly that one. A rendered port of another number or name
    would leave the policy opening a port nothing listens on, or the monitor finding no target."""
    from components.config import transformer_settings
    from components.steps.promote import render_transformer
    from components.steps.serving_authorization import TRANSFORMER_PORT
    from pipelines.local import declaration

    pipeline = declaration("fraud")
    cfg = pipeline.config()
    described = transformer_settings(cfg, pipeline.spec.image)
    for mode in ("Serverless", "RawDeployment"):
        settings = cfg.promote.model_copy(update={"deployment_mode": mode})
        (container,) = render_transformer("fraud-detector", described, settings)["containers"]
        ports = container.get("ports") or [KNATIVE_USER_PORT]  # Knative's, when the container names none
        assert (mode == "Serverless") == ("ports" not in container), mode
        assert [(port["name"], port["containerPort"], port.get("protocol", "TCP")) for port in ports] == [
            (TRANSFORMER_PORT_NAME, TRANSFORMER_PORT, "TCP")
        ], mode
    assert KNATIVE_USER_PORT["containerPort"] == TRANSFORMER_PORT
    (endpoint,) = transformer_pod_monitor("fraud")["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == TRANSFORMER_PORT_NAME == KNATIVE_USER_PORT["name"]
    (rule,) = transformer_metrics_policy("fraud")["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": TRANSFORMER_PORT}]


def test_only_the_decision_log_is_kept_with_the_pods_namespace() -> None:
    """The real collector's body, plus what a body must not be able to do: a forged
    `namespace="other"` (and `job`, `inference_service`) on a decision-log series, and a foreign
    family (a drift gauge, which would feed ModelDriftDetected; a KServe request counter). Stored:
    only the decision log's families (decision_log.RECORDS with `_total`, decision_log.SPILL_BYTES)
    and the request log's per-version figures (request_log.FAMILIES), every one with the pod's namespace
    and InferenceService and the transformer's job, no exported_* label; the forged series is stored as
    fraud's own. Negative cases: the same monitor
    finds no target in another namespace, on the queue-proxy's ports, or on a predictor's pod; and
    the scrape broken on purpose (honor_labels, as the Pushgateway's was before issue 29) keeps the
    forged namespace."""
    body = _exposition(written=100, spilled=0, dropped=5, spill_bytes=4096)
    assert f"{RECORDS}_total" in body and SPILL_BYTES in body
    forged = (
        f'{RECORDS}_total{{outcome="dropped",namespace="other",job="{SCRAPE_JOB}",inference_service="pricer"}} 50.0\n'
        'mlops_drift_share{namespace="other",pipeline="pricing",model="pricer",version="1"} 1.0\n'
        'revision_request_count{namespace="other",response_code_class="5xx"} 9.0\n'
    )
    stored = _scraped("fraud", "fraud-detector", body + forged)
    kept = [series for series in stored if series]
    assert {series["__name__"] for series in kept} == set(scraped_decision_families())
    per_version = 1 + len(BUCKETS) + 1 + 2 + 3  # one code class, the buckets and +Inf, sum, count; 3 log outcomes
    assert len(kept) == 5 + per_version and stored[-2:] == [None, None], stored  # + 3 outcomes, gauge, forgery
    (answered,) = [s for s in kept if s["__name__"] == "mlops_transformer_requests_total"]
    assert {k: answered[k] for k in ("model", "version", "role", "code_class")} == {
        "model": "fraud-detector", "version": "3", "role": "canary", "code_class": "2xx"}  # fmt: skip
    pod, address = PODS[("fraud", "fraud-detector")]
    for series in kept:
        assert {k: series[k] for k in ("namespace", "inference_service", "job", "pod", "container", "endpoint")} == {
            "namespace": "fraud", "inference_service": "fraud-detector", "job": TRANSFORMER_SCRAPE_JOB, "pod": pod,
            "container": "kserve-container", "endpoint": "user-port",
        }, series  # fmt: skip
        assert series["instance"] == f"{address}:8080" and not any(k.startswith("exported_") for k in series)
    dropped = [s for s in kept if s.get("outcome") == "dropped" and s["__name__"] == f"{RECORDS}_total"]
    assert len(dropped) == 2 and all(s["namespace"] == "fraud" for s in dropped)

    monitor = transformer_pod_monitor("fraud")
    config = pod_monitor_scrape(monitor)
    elsewhere = pod_target(_pod("forecast", "forecast-demand"), address="10.0.5.14", container="kserve-container",
                           port=KNATIVE_USER_PORT)  # fmt: skip
    assert scrape(monitor, elsewhere, _samples(body)) == [None] * len(_samples(body))
    fraud_pod = _pod("fraud", "fraud-detector")
    for port in QUEUE_PROXY_PORTS:
        queue = pod_target(fraud_pod, address="10.0.3.21", container="queue-proxy", port=port)
        assert target_labels(queue, config["relabel_configs"]) is None, port
    predictor = {"metadata": {**fraud_pod["metadata"], "labels": {**fraud_pod["metadata"]["labels"],
                                                                   "component": "predictor"}}}  # fmt: skip
    on_predictor = pod_target(predictor, address="10.0.3.30", container="kserve-container", port=KNATIVE_USER_PORT)
    assert target_labels(on_predictor, config["relabel_configs"]) is None

    honored = _scraped("fraud", "fraud-detector", forged, honor_labels=True)
    assert [s["namespace"] for s in honored if s] == ["other"]


def test_the_promtool_case_feeds_the_rules_what_the_scrape_stores() -> None:
    """The promtool case "decision log" is shaped as the scrape stores it: each of its series but
    the forged push is exactly one that the rendered PodMonitor stores from fraud's or forecast's
    transformer (every label, the operator's included), and every series the scrape stores from
    those two pods is in the case. The control: a series as the promtool case had it before (no
    job, endpoint, container or instance) is not one the scrape stores."""
    expected = [s for s in input_series(GROUP) if s.get("job") != SCRAPE_JOB]
    scraped: list[dict[str, str] | None] = []
    for namespace, service in PODS:
        scraped += _scraped(namespace, service, _exposition(written=1, spilled=1, dropped=1, spill_bytes=1))
    assert None not in scraped
    alerted = {f"{RECORDS}_total", SPILL_BYTES, f"{LOG_RECORDS}_total"}  # the per-version series: --analyze only
    assert sorted(_key(s) for s in scraped if s and s["__name__"] in alerted) == sorted(_key(s) for s in expected)
    before = {"__name__": f"{RECORDS}_total", "namespace": "fraud", "inference_service": "fraud-detector",
              "pod": "fraud-detector-transformer-1", "outcome": "dropped"}  # fmt: skip
    assert before not in scraped


def _key(series: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(series.items()))


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus package (make monitoring-install)"
    return found


def _decision_case(series: list[dict[str, str]]) -> dict[str, Any]:
    """The promtool case "decision log" with its scraped series replaced by `series` (same order)."""
    tests = yaml.safe_load(PROMTOOL_CASES.read_text())
    (case,) = [test for test in tests["tests"] if test["name"] == GROUP]
    inputs = [entry for entry in case["input_series"] if f'job="{SCRAPE_JOB}"' not in entry["series"]]
    assert len(inputs) == len(series)
    for entry, labels in zip(inputs, series, strict=True):
        name = labels["__name__"]
        body = ", ".join(f'{key}="{value}"' for key, value in labels.items() if key != "__name__")
        entry["series"] = f"{name}{{{body}}}"
    return {**tests, "tests": [case]}


def _promtool_run(tmp_path: Path, tests: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    document = yaml.safe_load(RULES.read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)


@pytest.mark.integration  # Debian's promtool, installed by `make test` (services-install)
def test_decision_log_dropping_fires_on_the_scraped_series(tmp_path: Path) -> None:
    """DecisionLogDropping and DecisionLogSpilling, the rules file's own expressions, evaluated by
    promtool on the series the rendered scrape stores (the case's series, derived above to be those).
    Positive control: the case passes. Broken on purpose: the same pods scraped by a PodMonitor that
    keeps the Pushgateway's job (as if it reused SCRAPE_JOB): the rules' `job!="mlops-pushgateway"`
    ignores every series, and promtool names DecisionLogDropping as not firing."""
    expected = [s for s in input_series(GROUP) if s.get("job") != SCRAPE_JOB]
    passed = _promtool_run(tmp_path, _decision_case(expected))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    monitor = transformer_pod_monitor("fraud")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    relabelings = [{**rule, "replacement": SCRAPE_JOB} if rule.get("targetLabel") == "job" else rule
                   for rule in endpoint["relabelings"]]  # fmt: skip
    broken: list[dict[str, str]] = []
    for series in expected:
        namespace = series["namespace"]
        wrong = {**monitor, "metadata": {**monitor["metadata"], "namespace": namespace},
                 "spec": {**monitor["spec"], "namespaceSelector": {"matchNames": [namespace]},
                          "podMetricsEndpoints": [{**endpoint, "relabelings": relabelings}]}}  # fmt: skip
        outcome = f'{{outcome="{series["outcome"]}"}}' if "outcome" in series else ""
        body = f"{series['__name__']}{outcome} 1\n"
        (stored,) = _scraped(namespace, series["inference_service"], body, monitor=wrong)
        assert stored is not None and stored["job"] == SCRAPE_JOB
        broken.append(stored)
    failed = _promtool_run(tmp_path, _decision_case(broken))
    assert failed.returncode != 0 and "alertname: DecisionLogDropping," in failed.stdout + failed.stderr
