"""Drift and the owner's notices, end to end on real Prometheus, Pushgateway and Alertmanager
(Debian's, on loopback).

The session's fraud run on the platform services (platform_run) registered a version; it is made
champion here (the canary lifecycle has its own tests). Then the drift step, as a pipeline task
runs it (`mlops step drift`), compares two windows with the champion's training set:
- an undrifted control (a sample of the same transactions): no retrain, no alert;
- a drifted window (`amount` up 60%, 40% of the rows moved to risky merchant categories): the
  figures reach Prometheus through the Pushgateway, ModelDriftDetected fires, and Alertmanager
  posts it to the owner's route (the fraud config's `owner`) on a loopback webhook.
Then a gate fails and a step fails: the notify step and the exit handler run as the rendered
WorkflowTemplate calls them, with the environment its steps get (the tenant's ConfigMap, the
Pushgateway on loopback), and both notices reach the owner's receiver.
Monitoring runs as `mlops dev up --monitoring --tenancy` runs it (devstack/tenant_monitoring.py):
one Pushgateway per declared tenant behind the tenant's password, each scraped as the cluster's
ServiceMonitor scrapes (pipelines.tenant_monitoring); fraud pushes to its own with its own
credentials, and a last test pushes as pricing with fraud's labels (issue 29).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
import requests

from components.steps.drift_metrics import METRICS
from devstack import process
from devstack.monitoring import Monitoring
from devstack.stack import Stack
from devstack.tenant_pushgateways import Gateway
from pipelines.golden import MANIFESTS
from pipelines.local import declaration
from pipelines.tenancy import load, loopback_alertmanager
from pipelines.tenant_monitoring import SCRAPE_JOB, prometheus_scrape_config
from tests.integration.conftest import mlops
from tests.loopback_http import QuietHandler, start

pytestmark = pytest.mark.integration
FRAUD = declaration("fraud").config()


class Webhook:
    """A loopback receiver that keeps what Alertmanager posts, with the query it was posted to."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append({"query": parse_qs(urlparse(self.path).query), "body": body})
                self.send_response(200)
                self.end_headers()

        self.server = start(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitoring, Webhook]]:
    """Prometheus, a Pushgateway per declared tenant (manifests/tenants/tenants.yaml) and
    Alertmanager on loopback, routed as the tenants' AlertmanagerConfigs route (pipelines/alerting.py:
    the fraud pipeline's owner, each tenant's catch-all), each receiver this module's webhook."""
    webhook = Webhook()
    services = Monitoring(
        root=tmp_path_factory.mktemp("monitoring-test"),
        port_base=process.free_port_base(3),
        alert_routing=loopback_alertmanager((FRAUD,), webhook.url, MANIFESTS),
        tenants=tuple(tenant.name for tenant in load(MANIFESTS).tenants),
        tenant_scrape=prometheus_scrape_config,
    )
    try:
        services.up()
        yield services, webhook
    finally:
        services.down()
        webhook.server.shutdown()


@pytest.fixture(scope="module")
def champion(platform_run: dict[str, Any]) -> Iterator[int]:
    from mlflow import MlflowClient

    registration = platform_run["registration"]
    client = MlflowClient(platform_run["env"]["MLFLOW_TRACKING_URI"])
    client.set_registered_model_alias(registration["model_name"], "champion", str(registration["version"]))
    try:
        yield int(registration["version"])
    finally:  # leave the registry as the other tests found it
        client.delete_registered_model_alias(registration["model_name"], "champion")


def windows(platform_run: dict[str, Any], out: Path) -> dict[str, Path]:
    control = pd.read_parquet(platform_run["extract"]).sample(5000, random_state=3)
    rng = np.random.default_rng(5)
    drifted = control.copy()
    drifted["amount"] = (drifted["amount"] * 1.6).round(2)
    moved = rng.random(len(drifted)) < 0.4
    drifted.loc[moved, "merchant_category"] = rng.choice([4, 7, 11], int(moved.sum()))
    paths = {"control": out / "control.parquet", "drifted": out / "drifted.parquet"}
    control.to_parquet(paths["control"], index=False)
    drifted.to_parquet(paths["drifted"], index=False)
    return paths


def drift_step(
    platform_run: dict[str, Any], pushgateway: Gateway, current: Path, out: Path, run_id: str, *extra: str
) -> Any:
    env = {**platform_run["env"], **pushgateway.environment()}  # fraud's own gateway and credentials
    out.mkdir(parents=True, exist_ok=True)
    return mlops(
        env, "step", "drift", "--current-data", str(current),
        "--table-out", str(out / "table.json"), "--report-out", str(out / "report.html"),
        "--plot-out", str(out / "plot.png"), "--settings", json.dumps(FRAUD.drift.model_dump()),
        "--pipeline", "fraud", "--model-name", FRAUD.register_.model_name, "--experiment", FRAUD.register_.experiment,
        "--namespace", FRAUD.cluster.namespace, "--run-id", run_id, *extra,
    )  # fmt: skip


def summary(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in reversed(result.stdout.splitlines()) if line.startswith("{"))
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def query(monitoring: Monitoring, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(monitoring.url("prometheus") + "/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def firing(monitoring: Monitoring) -> list[dict[str, Any]]:
    alerts = requests.get(monitoring.url("prometheus") + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "ModelDriftDetected" and a["state"] == "firing"]


def drift_rule_evaluated_after(monitoring: Monitoring, moment: float) -> dict[str, Any] | None:
    """ModelDriftDetected's rule as Prometheus reports it, once an evaluation that began after `moment`
    (epoch seconds) is done; else None. Its `state` and `alerts` are that evaluation's verdict."""
    groups = requests.get(monitoring.url("prometheus") + "/api/v1/rules", params={"type": "alert"}, timeout=5)
    for group in groups.json()["data"]["groups"]:
        for rule in group["rules"]:
            if rule["name"] == "ModelDriftDetected":
                stamp = rule["lastEvaluation"].removesuffix("Z")  # RFC 3339, nanoseconds: seconds suffice
                evaluated = dt.datetime.fromisoformat(stamp[:19]).replace(tzinfo=dt.UTC).timestamp()
                return dict(rule) if evaluated > moment else None
    raise AssertionError("Prometheus has no ModelDriftDetected rule loaded")


def routed(monitoring: Monitoring, version: str) -> set[str]:
    """The receivers Alertmanager routed the alerts for the drift figures of `version` to: its own record
    of the routing, so a route that would notify later is seen now (each alert goes to its first matching
    route, and the routes never continue)."""
    answer = requests.get(monitoring.url("alertmanager") + "/api/v2/alerts",
                          params={"filter": f'version="{version}"'}, timeout=5)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return {receiver["name"] for alert in answer.json() for receiver in alert["receivers"]}


def test_drift_reaches_prometheus_and_pages_the_owner_and_the_control_does_not(
    stack: Stack,
    platform_run: dict[str, Any],
    champion: int,
    monitoring: tuple[Monitoring, Webhook],
    tmp_path: Path,
) -> None:
    services, webhook = monitoring
    paths = windows(platform_run, tmp_path)
    pushgateway = services.gateway(FRAUD.cluster.namespace)

    # the control first: figures arrive, nothing fires, nothing is posted
    control = summary(drift_step(platform_run, pushgateway, paths["control"], tmp_path / "control", "wf-control"))
    assert control["retrain"] is False and control["reason"].startswith("no retrain needed: 0 of 6 features")
    assert control["champion_version"] == champion and control["pushed"] is True
    shares = wait_for("control figures", lambda: query(services, 'mlops_drift_share{pipeline="fraud"}'))
    assert float(shares[0]["value"][1]) == 0.0
    # the rule's own verdict on them: an evaluation that began a second after they were queryable
    # (whole seconds, so two 1 s rounds later at most), in place of a fixed wait of four rounds
    seen = time.time()
    rule = wait_for(
        "a drift rule evaluation of the control figures", lambda: drift_rule_evaluated_after(services, seen)
    )
    assert rule["state"] == "inactive" and rule["alerts"] == [], rule
    assert firing(services) == [] and webhook.received == []

    # the drifted window
    drifted = summary(drift_step(platform_run, pushgateway, paths["drifted"], tmp_path / "drifted", "wf-drifted"))
    assert drifted["retrain"] is True and drifted["reason"].startswith("drift: 2 of 6 features drifted")
    table = json.loads((tmp_path / "drifted" / "table.json").read_text())
    verdicts = {f["feature"]: (f["method"], f["drifted"]) for f in table["features"]}
    assert verdicts["amount"] == ("ks", True) and verdicts["merchant_category"] == ("chisquare", True)
    assert (tmp_path / "drifted" / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (tmp_path / "drifted" / "report.html").read_text()[:2000].lower()

    series = wait_for(
        "drifted figures",
        lambda: [s for s in query(services, 'mlops_drift_share{pipeline="fraud"}') if float(s["value"][1]) > 0],
    )
    labels = series[0]["metric"]
    assert labels["namespace"] == "fraud" and labels["model"] == FRAUD.register_.model_name
    assert labels["version"] == str(champion)  # a label the scrape does not set stays as pushed
    p_values = query(services, 'mlops_feature_drift_p_value{pipeline="fraud", feature="amount"}')
    assert float(p_values[0]["value"][1]) < FRAUD.drift.p_value_threshold

    alert = wait_for("ModelDriftDetected firing", lambda: firing(services))[0]
    assert alert["labels"]["owner"] == "model-owner" and alert["labels"]["pipeline"] == "fraud"
    post = wait_for("the owner's notification", lambda: webhook.received)[0]
    assert post["body"]["receiver"] == "fraud-owner"
    assert post["query"]["owner"] == [FRAUD.owner]
    assert post["body"]["alerts"][0]["labels"]["alertname"] == "ModelDriftDetected"
    assert "drifted from its training data" in post["body"]["alerts"][0]["annotations"]["summary"]


def test_a_second_trigger_the_same_night_does_not_retrain(
    platform_run: dict[str, Any], champion: int, monitoring: tuple[Monitoring, Webhook], tmp_path: Path
) -> None:
    """The drifted window claimed tonight's retrain (the test above); another workflow skips,
    a retry of the same workflow does not, and --force-retrain always trains."""
    services, _ = monitoring
    paths = windows(platform_run, tmp_path)
    pushgateway = services.gateway(FRAUD.cluster.namespace)
    first = summary(drift_step(platform_run, pushgateway, paths["drifted"], tmp_path / "a", "wf-night-1"))
    claimant = "wf-night-1" if first["retrain"] else first["reason"].split("already retrained by ")[1]
    again = summary(drift_step(platform_run, pushgateway, paths["drifted"], tmp_path / "b", "wf-night-2"))
    assert again["retrain"] is False and f"was already retrained by {claimant}" in again["reason"]
    retry = summary(drift_step(platform_run, pushgateway, paths["drifted"], tmp_path / "c", claimant))
    assert retry["retrain"] is True  # the claimant's own retried step decides as before
    forced = summary(
        drift_step(platform_run, pushgateway, paths["control"], tmp_path / "d", "wf-forced", "--force-retrain")
    )
    assert forced["retrain"] is True and forced["reason"] == "retrain forced (--force-retrain)"


def owner_posts(webhook: Webhook, alertname: str) -> list[dict[str, Any]]:
    return [
        post
        for post in webhook.received
        if any(alert["labels"]["alertname"] == alertname for alert in post["body"]["alerts"])
    ]


def test_a_failed_gate_and_a_failed_step_reach_the_owner(
    monitoring: tuple[Monitoring, Webhook], tmp_path: Path
) -> None:
    """issue 28 ("nobody is told"): the gate-failure and run-failure notices were files nobody
    received, and a failed gate ends the workflow Succeeded, so no alert fired either. Each step
    runs with the flags the rendered WorkflowTemplate gives it and the environment of the tenant's
    mlops-platform ConfigMap (cluster_settings, the Pushgateway on loopback); each notice reaches
    the owner's receiver through Prometheus's rule and Alertmanager's routes."""
    from components.platform.settings import environment
    from pipelines.argo import render
    from pipelines.cluster import cluster_settings
    from pipelines.declaration import RunInputs

    services, webhook = monitoring
    fraud = declaration("fraud")
    own = services.gateway(FRAUD.cluster.namespace)  # the namespace's own Pushgateway, fraud's credentials
    settings = cluster_settings(FRAUD.cluster.namespace).model_copy(update={"pushgateway_url": own.url})
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_")}
    env = inherited | environment(settings) | own.environment()

    # the gate fails: notify with the parameters the pipeline passes it
    run = RunInputs.on_cluster(FRAUD).as_dict() | {"run_id": "fraud-e2e-gate"}
    parameters = fraud.step_parameters(FRAUD, run)["notify"]
    (tmp_path / "metrics.json").write_text(json.dumps({
        "gate": {"metric": "roc_auc", "value": 0.61, "threshold": 0.8, "direction": ">="},
        "holdout_rows": 2000, "model_sha256": "ab" * 32,
    }))  # fmt: skip
    flags = [item for name, value in parameters.items() for item in (f"--{name.replace('_', '-')}", str(value))]
    gate = mlops(
        env, "step", "notify", "--metrics", str(tmp_path / "metrics.json"),
        "--notice-out", str(tmp_path / "gate" / "notice"),
        "--notice-markdown-out", str(tmp_path / "gate" / "notice.md"), *flags,
    )  # fmt: skip
    assert summary(gate)["delivered"] == own.url

    # a step fails: the exit handler's command as rendered, with Argo's values for its variables
    template = render(fraud, FRAUD)["WorkflowTemplate"]
    handler = next(t for t in template["spec"]["templates"] if t["name"] == "notify-failure")["container"]
    failures = [{"displayName": "train", "templateName": "train", "phase": "Failed", "message": "exit code 2"}]
    argo = {
        "{{workflow.name}}": "fraud-e2e-run",
        "{{workflow.status}}": "Failed",
        "{{workflow.failures}}": json.dumps(failures),
        "/work/out/notice": str(tmp_path / "run" / "notice"),
    }
    failed = mlops(env, *handler["command"][1:], *(argo.get(arg, arg) for arg in handler["args"]))
    assert summary(failed)["delivered"] == own.url

    gate_post = wait_for("the gate notice at the owner's receiver", lambda: owner_posts(webhook, "PipelineGateFailed"))
    run_post = wait_for("the run notice at the owner's receiver", lambda: owner_posts(webhook, "PipelineRunFailed"))
    for post in (gate_post[0], run_post[0]):
        assert post["body"]["receiver"] == "fraud-owner" and post["query"]["owner"] == [FRAUD.owner]
        labels = post["body"]["alerts"][0]["labels"]
        assert labels["owner"] == "model-owner" and labels["pipeline"] == FRAUD.pipeline
        assert labels["namespace"] == FRAUD.cluster.namespace
    assert gate_post[0]["body"]["alerts"][0]["labels"]["run"] == "fraud-e2e-gate"
    run_alert = run_post[0]["body"]["alerts"][0]
    assert run_alert["labels"]["workflow"] == "fraud-e2e-run" and run_alert["labels"]["failed_steps"] == "train"
    assert json.loads((tmp_path / "run" / "notice").read_text())["failed_steps"][0]["displayName"] == "train"


FORGED_GROUP = f"/metrics/job/{SCRAPE_JOB}/namespace/{FRAUD.cluster.namespace}/pipeline/{FRAUD.pipeline}"
"""The group issue 29's forgery pushes: fraud's namespace and pipeline in the path, under the job name
the pushed-figure rules select."""
CONTROL_GROUP = f"/metrics/job/isolation-control/pipeline/{FRAUD.pipeline}"


def push_drift(gateway: Gateway, user: str, password: str, group: str, version: str) -> int:
    """`mlops_drift_share 1` over a 0.3 threshold with fraud's labels (pipeline, model), with the
    drift step's own HELP texts (a Pushgateway refuses a family whose HELP differs from what it
    holds). The HTTP status."""
    labels = f'pipeline="{FRAUD.pipeline}",model="{FRAUD.register_.model_name}",version="{version}"'
    body = "".join(
        f"# HELP {name} {METRICS[name]}\n# TYPE {name} gauge\n{name}{{{labels}}} {value}\n"
        for name, value in (("mlops_drift_share", 1), ("mlops_drift_share_threshold", 0.3))
    )
    answer = requests.put(gateway.url + group, data=body, auth=(user, password) if user else None, timeout=5)
    return answer.status_code


def paged(webhook: Webhook, version: str) -> list[tuple[str, str, dict[str, str]]]:
    """(receiver, owner, labels) of each firing alert posted for the drift figures of `version`."""
    return [
        (post["body"]["receiver"], post["query"].get("owner", [""])[0], alert["labels"])
        for post in list(webhook.received)
        for alert in post["body"]["alerts"]
        if alert["labels"].get("version") == version and alert["status"] == "firing"
    ]


def test_a_push_as_pricing_with_frauds_labels_pages_pricing_and_never_fraud(
    monitoring: tuple[Monitoring, Webhook],
) -> None:
    """issue 29 (forged alerts): on the shared Pushgateway, scraped with honor_labels, pricing
    pushed `mlops_drift_share 1` under namespace fraud and ModelDriftDetected paged fraud's owner.
    Now each tenant has its own gateway behind its own password, scraped with `namespace` set from
    the target, and the routes match the namespace: fraud's push pages fraud's owner (the control;
    the drift step's own push did above), pricing's forged one is refused at fraud's gateway and,
    on its own, pages pricing's owner only. Scraped with honor_labels, the same push reaches
    fraud's owner: the test sees the leak when the control is broken."""
    services, webhook = monitoring
    fraud, pricing = services.gateway("fraud"), services.gateway("pricing")
    owners = {tenant.name: tenant.owner for tenant in load(MANIFESTS).tenants}
    try:
        # positive control: fraud's push on its own gateway, with its own password, pages fraud's owner
        assert push_drift(fraud, "fraud", fraud.password, CONTROL_GROUP, "control") == 200
        receiver, owner, labels = wait_for("fraud's alert at fraud's owner", lambda: paged(webhook, "control"))[0]
        assert (receiver, owner, labels["namespace"]) == ("fraud-owner", FRAUD.owner, "fraud")

        # the forgery: fraud's gateway refuses pricing (its password, or none); pricing's own takes it
        # (under the scrape's own job name, which the pushed-figure rules select)
        assert push_drift(fraud, "pricing", pricing.password, FORGED_GROUP, "forged") == 401
        assert push_drift(fraud, "", "", FORGED_GROUP, "forged") == 401
        assert push_drift(pricing, "pricing", pricing.password, FORGED_GROUP, "forged") == 200
        series = wait_for("the forged series", lambda: query(services, 'mlops_drift_share{version="forged"}'))
        assert series[0]["metric"]["namespace"] == "pricing" and "exported_namespace" not in series[0]["metric"]
        wait_for("the forged alert at pricing's owner", lambda: paged(webhook, "forged"))
        # Alertmanager's own record of where it routed the alert, in place of waiting a group_interval
        # (5 s) for any other route's notification: a receiver it routed to is listed before it posts
        assert routed(services, "forged") == {"pricing-tenant-owner"}
        assert {(receiver, owner) for receiver, owner, _ in paged(webhook, "forged")} == {
            ("pricing-tenant-owner", owners["pricing"])
        }
        assert all(labels["namespace"] == "pricing" for _, _, labels in paged(webhook, "forged"))

        # the control broken on purpose: a scrape that honors pushed labels lets the forgery page fraud
        services.tenant_scrape = lambda namespace, target: {
            **prometheus_scrape_config(namespace, target),
            "honor_labels": True,
        }
        services.reload_prometheus()
        assert push_drift(pricing, "pricing", pricing.password, FORGED_GROUP, "leak") == 200
        leaked = wait_for(
            "the leak at fraud's owner", lambda: [p for p in paged(webhook, "leak") if p[0] == "fraud-owner"]
        )
        assert ("fraud-owner", FRAUD.owner) in {(receiver, owner) for receiver, owner, _ in leaked}
        assert "fraud-owner" in routed(services, "leak")  # the routing record shows the leak too
    finally:
        services.tenant_scrape = prometheus_scrape_config
        services.reload_prometheus()
        for gateway, group in ((fraud, CONTROL_GROUP), (pricing, FORGED_GROUP)):
            requests.delete(gateway.url + group, auth=(gateway.tenant, gateway.password), timeout=5)
