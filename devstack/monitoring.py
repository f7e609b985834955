"""Prometheus, its Pushgateway and Alertmanager on loopback: Debian's packages, the platform's own rules.

What `mlops dev up --monitoring` and the tests start beside a stack, configured from the same
sources as the cluster: the rule groups of manifests/monitoring/prometheus-rules.yaml, and the
alert routes the caller renders with pipelines/alerting.py (each receiver a webhook here, where
the cluster mails the owner; devstack sits below pipelines, so it takes them as data).
Prometheus evaluates every second so a test sees an alert within seconds.

Two arrangements, both scraped with the cluster's rules (pipelines.tenant_monitoring, handed down
as `tenant_scrape`: honor_labels false, `job` the fixed SCRAPE_JOB, only the `mlops_*` families),
so the alert rules' `job="mlops-pushgateway"` selectors match here as they do on the cluster:
- one unauthenticated Pushgateway (`mlops dev up --monitoring`: one team's laptop, whose pushes
  are all its own), scraped as namespace LAPTOP_NAMESPACE; the owners' routes there match on the
  pipeline alone (`laptop_routing`), since every pipeline on the laptop pushes to that one gateway
  (one MLOPS_PUSHGATEWAY_URL) whatever its cluster namespace. Issue 29: this gateway was scraped with
  honor_labels, so its series kept the pushed `job="mlops-drift"` and no namespace once pushes
  stopped carrying one, and no alert rule or owner route matched: nothing paged on a laptop;
- with `tenants` (`mlops dev up --monitoring --tenancy`), the cluster's since issue 29: one
  Pushgateway per tenant behind the tenant's password, each scraped as its own target with
  `namespace: <tenant>`, honor_labels false and the cluster's keep-list of `mlops_*` families
  (devstack/tenant_pushgateways.py), and no shared one, so no tenant can push for another.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.errors import ComponentError
from devstack import process, tenant_pushgateways
from devstack.tenant_pushgateways import Gateway, ScrapeConfig

__all__ = ["BINARIES", "LAPTOP_NAMESPACE", "RULES", "SERVICES", "Monitoring", "laptop_routing", "rule_groups"]

SERVICES = ("pushgateway", "alertmanager", "prometheus")
LAPTOP_NAMESPACE = "laptop"
"""The `namespace` the laptop's one Pushgateway is scraped as (no tenant's: the laptop is one team's)."""
RULES = Path(__file__).resolve().parents[1] / "manifests" / "monitoring" / "prometheus-rules.yaml"
BINARIES = {
    "pushgateway": "prometheus-pushgateway",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
}


def rule_groups() -> dict[str, Any]:
    """The PrometheusRule's groups as a plain rules file, exactly as the cluster evaluates them."""
    document = yaml.safe_load(RULES.read_text())
    return {"groups": document["spec"]["groups"]}


@dataclass
class Monitoring:
    root: Path
    port_base: int
    alert_routing: dict[str, Any] = field(
        default_factory=lambda: {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}
    )
    """alertmanager.yml's routes and receivers (pipelines.alerting.alertmanager_yaml)."""
    interval: str = "1s"
    tenants: tuple[str, ...] = ()
    """With tenants: one authenticated Pushgateway each (devstack/tenant_pushgateways.py), no shared one."""
    tenant_scrape: ScrapeConfig | None = None
    """The scrape job of one namespace's gateway, the cluster's rules
    (pipelines.tenant_monitoring.prometheus_scrape_config), handed down as data. Without tenants and
    without it, the one gateway is not scraped at all (for callers that read the gateway itself)."""
    tenant_passwords: dict[str, str] = field(default_factory=dict)
    """The passwords of the tenants provisioned on the stack: each pushes with its own."""
    gateway_first_port: int = 0
    """Where the tenants' gateways' ports are looked for (0: right after the three above)."""

    @property
    def ports(self) -> dict[str, int]:
        return {service: self.port_base + offset for offset, service in enumerate(SERVICES)}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def pid_file(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def running(self, service: str) -> bool:
        return process.alive(process.read_pid(self.pid_file(service)))

    @property
    def tenancy(self) -> bool:
        return bool(self.tenants)

    def gateways(self) -> list[Gateway]:
        """The tenants' gateways (generated on first use: port, passwords, web config)."""
        first = self.gateway_first_port or self.port_base + len(SERVICES)
        return tenant_pushgateways.ensure(self.root, self.tenants, first, self.tenant_passwords)

    def gateway(self, tenant: str) -> Gateway:
        return next(gateway for gateway in self.gateways() if gateway.tenant == tenant)

    def _scrape_configs(self) -> list[dict[str, Any]]:
        if self.tenancy:
            if self.tenant_scrape is None:
                raise ComponentError(
                    "dev",
                    "the tenants' Pushgateways need the cluster's scrape rules to be scraped with",
                    "pass tenant_scrape=pipelines.tenant_monitoring.prometheus_scrape_config (mlops dev up does)",
                )
            return tenant_pushgateways.scrape_configs(self.root, self.gateways(), self.tenant_scrape)
        if self.tenant_scrape is None:
            return []
        return [self.tenant_scrape(LAPTOP_NAMESPACE, f"127.0.0.1:{self.ports['pushgateway']}")]

    def _write_prometheus_config(self) -> None:
        (self.root / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
                    "rule_files": [str(self.root / "rules.yaml")],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}
                        ]
                    },
                    "scrape_configs": self._scrape_configs(),
                },
                sort_keys=False,
            )
        )

    def _write_configs(self) -> None:
        self._write_prometheus_config()
        (self.root / "rules.yaml").write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
        routing = self.alert_routing if self.tenancy else laptop_routing(self.alert_routing)
        (self.root / "alertmanager.yml").write_text(yaml.safe_dump(routing, sort_keys=False))

    def reload_prometheus(self) -> None:
        """Rewrite prometheus.yml (the scrape, the tenants' gateways) and wait until Prometheus runs it."""
        self._write_prometheus_config()
        pid = process.read_pid(self.pid_file("prometheus"))
        if not process.alive(pid):
            return
        assert pid is not None
        wanted = _scrape_summary(yaml.safe_load((self.root / "prometheus.yml").read_text()))
        os.kill(pid, signal.SIGHUP)
        # and Alertmanager is found again: an alert that fires before that is dropped, and resent
        # only a minute later (Prometheus's resend delay)
        process.wait_until(
            lambda: _scrape_summary(self._loaded_config()) == wanted and self._alertmanagers() > 0,
            what="prometheus's configuration reload",
            log=self.log("prometheus"),
            pid=pid,
            timeout=30,
        )

    def _alertmanagers(self) -> int:
        """How many Alertmanagers Prometheus sends its alerts to now."""
        import requests

        answer = requests.get(self.url("prometheus") + "/api/v1/alertmanagers", timeout=5).json()
        return len(answer["data"]["activeAlertmanagers"])

    def _loaded_config(self) -> dict[str, Any]:
        """The configuration Prometheus runs now (its status API)."""
        import requests

        answer = requests.get(self.url("prometheus") + "/api/v1/status/config", timeout=5).json()
        loaded: dict[str, Any] = yaml.safe_load(answer["data"]["yaml"])
        return loaded

    def starts(self) -> list[tuple[str, list[str], Callable[[], bool]]]:
        """(service, argv, readiness check) in start order: the gateways, Alertmanager, Prometheus."""
        import requests

        def ready(url: str, auth: tuple[str, str] | None = None) -> Callable[[], bool]:
            return lambda: bool(requests.get(url + "/-/ready", auth=auth, timeout=1).status_code == 200)

        binary = process.find_binary(BINARIES["pushgateway"])
        if self.tenancy:
            starts = [
                (
                    gateway.service,
                    tenant_pushgateways.argv(binary, self.root, gateway),
                    ready(gateway.url, (tenant_pushgateways.SCRAPER, gateway.scrape_password)),
                )
                for gateway in self.gateways()
            ]
        else:
            starts = [("pushgateway", self._argv("pushgateway"), ready(self.url("pushgateway")))]
        return starts + [(service, self._argv(service), ready(self.url(service))) for service in SERVICES[1:]]

    def _argv(self, service: str) -> list[str]:
        binary = process.find_binary(BINARIES[service])
        listen = f"--web.listen-address=127.0.0.1:{self.ports[service]}"
        if service == "pushgateway":
            # its own file, as the cluster's has (manifests/monitoring/pushgateway.yaml): Debian's
            # default, /var/lib/prometheus/pushgateway.data, is one file for every instance on the
            # machine, so each started with what any earlier one was pushed
            return [binary, listen, f"--persistence.file={self.root / 'pushgateway.data'}"]
        if service == "alertmanager":
            return [
                binary,
                listen,
                f"--config.file={self.root / 'alertmanager.yml'}",
                f"--storage.path={self.root / 'alertmanager-data'}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ]
        return [
            binary,
            listen,
            f"--config.file={self.root / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.root / 'prometheus-data'}",
        ]

    def up(self) -> dict[str, float]:
        """Start what is not running (the Pushgateways, Alertmanager, then Prometheus); seconds to ready."""
        for folder in ("run", "logs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._write_configs()
        timings: dict[str, float] = {}
        for service, argv, ready in self.starts():
            timings[service] = 0.0 if self.running(service) else self.start(service, argv, ready)
        return timings

    def start(self, service: str, argv: list[str], ready: Callable[[], bool]) -> float:
        """Start one service and wait until it answers; seconds to ready."""
        for folder in ("run", "logs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        pid = process.start(argv, self.log(service), self.pid_file(service), cwd=self.root)
        return process.wait_until(ready, what=service, log=self.log(service), pid=pid, timeout=60)

    def down(self) -> list[str]:
        """Stop Prometheus, Alertmanager and every Pushgateway this root started (a tenant's too)."""
        gateways = sorted(pid.stem for pid in (self.root / "run").glob("pushgateway*.pid"))
        return [
            service for service in ["prometheus", "alertmanager", *gateways] if process.stop(self.pid_file(service))
        ]


def laptop_routing(routing: dict[str, Any]) -> dict[str, Any]:
    """The routes for the laptop's one gateway: a pipeline's owner route without its `namespace`
    matcher (every series there is namespace LAPTOP_NAMESPACE); the other routes (on-call, a
    tenant's catch-all) as given. The trade-off: on a laptop a push labelled `pipeline="fraud"`
    pages fraud's owner whoever pushed it, which is the laptop's one team; on the cluster, and with
    `--tenancy`, the namespace comes from the gateway pushed to and is matched as well."""
    route = routing.get("route", {})

    def laptop(matchers: list[str]) -> list[str]:
        by_pipeline = any(matcher.startswith("pipeline=") for matcher in matchers)
        return [m for m in matchers if not (by_pipeline and m.startswith("namespace="))]

    routes = [{**r, "matchers": laptop(list(r.get("matchers", [])))} for r in route.get("routes", [])]
    return {**routing, "route": {**route, "routes": routes}} if "routes" in route else routing


def _scrape_summary(config: dict[str, Any]) -> list[tuple[str, bool]]:
    """What a reload must have changed: the scrape jobs and whether each honors pushed labels."""
    return sorted((job["job_name"], bool(job.get("honor_labels", False))) for job in config.get("scrape_configs", []))
