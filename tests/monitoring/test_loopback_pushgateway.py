"""The loopback Pushgateway (devstack/monitoring.py) starts empty and keeps its own state; with
tenants, each tenant's takes only the tenant's own password; without, a drift push pages its owner.

Issue 28's end-to-end test found it: Debian's prometheus-pushgateway defaults to
--persistence.file=/var/lib/prometheus/pushgateway.data, one file for every instance on the
machine, so a fresh stack started with the groups any earlier one was pushed (the owner's notices,
which fire for a day, reached the next run's "nothing is posted" control).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from components.steps import drift_metrics
from devstack import process, tenant_pushgateways
from devstack.monitoring import LAPTOP_NAMESPACE, Monitoring
from devstack.tenant_pushgateways import Gateway
from pipelines.golden import MANIFESTS
from pipelines.local import available_pipelines, declaration
from pipelines.tenancy import loopback_alertmanager
from pipelines.tenant_monitoring import SCRAPE_JOB, prometheus_scrape_config
from tests.loopback_http import QuietHandler, start

pytestmark = pytest.mark.integration  # Debian's prometheus-pushgateway, installed by `make test`


def groups(services: Monitoring) -> list[dict[str, str]]:
    answer = requests.get(services.url("pushgateway") + "/api/v1/metrics", timeout=5).json()
    return [group["labels"] for group in answer["data"]]


def test_a_second_stack_does_not_start_with_the_first_ones_pushes(tmp_path: Path) -> None:
    first = Monitoring(root=tmp_path / "first", port_base=process.free_port_base(3))
    try:
        first.up()
        pushed = requests.put(
            first.url("pushgateway") + "/metrics/job/loopback-probe/namespace/fraud",
            data="probe_value 1\n",
            timeout=5,
        )
        assert pushed.status_code == 200 and {"job": "loopback-probe", "namespace": "fraud"} in groups(first)
    finally:
        first.down()  # the Pushgateway writes its persistence file on shutdown
    assert (tmp_path / "first" / "pushgateway.data").exists(), "the group was persisted under the stack's root"
    second = Monitoring(root=tmp_path / "second", port_base=process.free_port_base(3))
    try:
        second.up()
        assert groups(second) == []
    finally:
        second.down()


def test_each_tenants_gateway_takes_only_its_own_password_which_no_command_line_or_file_holds(
    tmp_path: Path,
) -> None:
    """issue 29 on loopback (`mlops dev up --monitoring --tenancy`): no NetworkPolicy keeps pricing
    off fraud's Pushgateway there, so each tenant's asks for the tenant's password. Positive control
    first (each tenant's push on its own gateway), then pricing on fraud's, with its password and with
    none; the passwords are on no command line and in no web config (bcrypt hashes only), and the
    tenant keeps its port and password when the gateways are listed again."""
    services = Monitoring(root=tmp_path, port_base=process.free_port_base(3), tenants=("fraud", "pricing"))
    gateways = {gateway.tenant: gateway for gateway in services.gateways()}
    started = []
    try:
        for service, argv, ready in services.starts():
            if service.startswith("pushgateway-"):
                services.start(service, argv, ready)
                started.append(service)
        fraud, pricing = gateways["fraud"], gateways["pricing"]

        def push(gateway: Gateway, auth: tuple[str, str] | None) -> int:
            url = gateway.url + "/metrics/job/probe/namespace/fraud"
            return requests.put(url, data="probe_value 1\n", auth=auth, timeout=5).status_code

        assert push(fraud, ("fraud", fraud.password)) == 200 and push(pricing, ("pricing", pricing.password)) == 200
        assert push(fraud, ("pricing", pricing.password)) == 401
        assert push(fraud, ("fraud", pricing.password)) == 401
        assert push(fraud, None) == 401

        secrets = {fraud.password, pricing.password, fraud.scrape_password, pricing.scrape_password}
        for service in started:
            pid = process.read_pid(services.pid_file(service))
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            assert "--web.config.file=" in cmdline and not any(secret in cmdline for secret in secrets)
        for gateway in gateways.values():
            web_config = tenant_pushgateways.web_config_file(tmp_path, gateway).read_text()
            assert "$2b$" in web_config and not any(secret in web_config for secret in secrets)
        assert {gateway.tenant: gateway for gateway in services.gateways()} == gateways
    finally:
        services.down()


def _webhook() -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    """A loopback receiver keeping what Alertmanager posts, with the query it was posted to."""
    received: list[dict[str, Any]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"owner": parse_qs(urlparse(self.path).query).get("owner", [""])[0], "body": body})
            self.send_response(200)
            self.end_headers()

    return start(Handler), received


def test_without_tenancy_a_drift_push_fires_and_pages_the_pipelines_owner(tmp_path: Path) -> None:
    """issue 29: `mlops dev up --monitoring` without --tenancy must page as the cluster does. Pushes
    carry no namespace now and the rules select `job="mlops-pushgateway"`, while the laptop's one
    gateway was scraped with honor_labels (series kept job="mlops-drift", no namespace): nothing
    matched and nothing paged. Here the gateway is scraped with the cluster's rules, handed down as
    `mlops dev up` does, and the routes of every available pipeline are those it renders: fraud's
    drift push (the drift step's own push_metrics) fires ModelDriftDetected, which reaches fraud's
    owner and no other pipeline's."""
    configs = [declaration(name).config() for name in available_pipelines()]
    fraud = next(config for config in configs if config.pipeline == "fraud")
    others = {config.owner for config in configs} - {fraud.owner}
    assert others, "the control needs another pipeline's owner who must not be paged"
    server, received = _webhook()
    url = f"http://127.0.0.1:{server.server_port}/alerts"
    routing = loopback_alertmanager(configs, url, MANIFESTS)
    services = Monitoring(
        root=tmp_path,
        port_base=process.free_port_base(3),
        alert_routing=routing,
        tenant_scrape=prometheus_scrape_config,
    )
    try:
        services.up()
        now = dt.datetime.now(dt.UTC)
        feature = SimpleNamespace(feature="amount", method="ks", p_value=0.001, statistic=0.4)
        result = SimpleNamespace(drift_share=0.5, threshold=0.3, detected=True, current_rows=100, features=[feature])
        reference = SimpleNamespace(model=fraud.register_.model_name, version=3, age_seconds=lambda _: 60.0)
        drift_metrics.push_metrics(services.url("pushgateway"), result, reference, pipeline="fraud", now=now)  # type: ignore[arg-type]

        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not any(r["owner"] == fraud.owner for r in received):
            time.sleep(0.5)
        paged = [r for r in received if r["owner"] == fraud.owner]
        assert paged, f"fraud's owner was not paged; received {received}"
        alerts = [alert["labels"] for r in paged for alert in r["body"]["alerts"]]
        assert {"alertname": "ModelDriftDetected", "pipeline": "fraud"}.items() <= alerts[0].items()
        assert alerts[0]["namespace"] == LAPTOP_NAMESPACE  # the scrape's
        promql = {"query": 'mlops_drift_detected{pipeline="fraud"}'}
        answer = requests.get(services.url("prometheus") + "/api/v1/query", params=promql, timeout=5).json()
        series = answer["data"]["result"]
        assert series and all(
            (s["metric"]["job"], s["metric"]["namespace"]) == (SCRAPE_JOB, LAPTOP_NAMESPACE) for s in series
        ), series  # the job the rules select, set by the scrape, not the pushed one
        # a group_interval more (and a second): any other route's notification would be here by now
        time.sleep(float(routing["route"]["group_interval"].removesuffix("s")) + 1)
        assert not [r for r in received if r["owner"] in others], "another pipeline's owner was paged"
    finally:
        services.down()
        server.shutdown()
