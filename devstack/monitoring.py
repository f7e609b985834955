"""Prometheus, its Pushgateway and Alertmanager on loopback: Debian's packages, the platform's own rules.

What `mlops dev up --monitoring` and the tests start beside a stack, configured from the same
sources as the cluster: the rule groups of manifests/monitoring/prometheus-rules.yaml, and the
alert routes the caller renders with pipelines/alerting.py (each receiver a webhook here, where
the cluster mails the owner; devstack sits below pipelines, so it takes them as data).
Prometheus scrapes the Pushgateway with honor_labels, as the cluster's must, and evaluates every
second so a test sees an alert within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack import process

SERVICES = ("pushgateway", "alertmanager", "prometheus")
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

    def _write_configs(self) -> None:
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
                    "scrape_configs": [
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{self.ports['pushgateway']}"]}],
                        }
                    ],
                },
                sort_keys=False,
            )
        )
        (self.root / "rules.yaml").write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
        (self.root / "alertmanager.yml").write_text(yaml.safe_dump(self.alert_routing, sort_keys=False))

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
        """Start what is not running (Pushgateway, Alertmanager, then Prometheus); seconds to ready."""
        import requests

        for folder in ("run", "logs"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._write_configs()
        timings: dict[str, float] = {}
        for service in SERVICES:
            if self.running(service):
                timings[service] = 0.0
                continue
            pid = process.start(self._argv(service), self.log(service), self.pid_file(service), cwd=self.root)
            ready = self.url(service) + "/-/ready"

            def answers(url: str = ready) -> bool:
                return bool(requests.get(url, timeout=1).status_code == 200)

            timings[service] = process.wait_until(
                answers,
                what=service,
                log=self.log(service),
                pid=pid,
                timeout=60,
            )
        return timings

    def down(self) -> list[str]:
        return [service for service in reversed(SERVICES) if process.stop(self.pid_file(service))]
