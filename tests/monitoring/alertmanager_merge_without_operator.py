"""Test-only: the Prometheus Operator's merge of tenants' AlertmanagerConfigs into one routing
tree, reduced to what routing needs, because no operator runs here; Alertmanager's own router
(`amtool config routes test`) then answers where an alert goes.

What the operator does, as far as these tests rely on it: each AlertmanagerConfig's route becomes
a child of the root route, matched on `namespace=<its namespace>` (the CRD: "the Alertmanager
configuration only applies to alerts for which the namespace label is equal to the namespace of
the AlertmanagerConfig resource"), with `continue: true` so that every tenant's tree is tried;
its receivers are renamed `<namespace>/<name>/<receiver>`. Receivers keep only their names
(routing does not read their integrations). `scoped=False` leaves out the namespace matcher, as
an operator run with alertmanagerConfigMatcherStrategy None would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = "root-oncall"


def _route(route: dict[str, Any], prefix: str) -> dict[str, Any]:
    merged: dict[str, Any] = {"receiver": prefix + route["receiver"]}
    matchers = [f'{m["name"]}="{m["value"]}"' for m in route.get("matchers", [])]
    if matchers:
        merged["matchers"] = matchers
    if route.get("routes"):
        merged["routes"] = [_route(child, prefix) for child in route["routes"]]
    return merged


def merge(configs: list[dict[str, Any]], *, scoped: bool = True) -> dict[str, Any]:
    """One alertmanager.yml of the tenants' AlertmanagerConfig objects."""
    routes, receivers = [], [{"name": ROOT}]
    for config in configs:
        prefix = f"{config['metadata']['namespace']}/{config['metadata']['name']}/"
        route = _route(config["spec"]["route"], prefix)
        if scoped:
            route["matchers"] = [f'namespace="{config["metadata"]["namespace"]}"', *route.get("matchers", [])]
        routes.append({**route, "continue": True})
        receivers += [{"name": prefix + receiver["name"]} for receiver in config["spec"]["receivers"]]
    return {"route": {"receiver": ROOT, "routes": routes}, "receivers": receivers}


def receivers(config: dict[str, Any], labels: dict[str, str], folder: Path) -> list[str]:
    """Where Alertmanager's router sends an alert with `labels` (amtool, Debian's Alertmanager)."""
    import yaml

    amtool = shutil.which("amtool")
    assert amtool, "amtool is missing: `make test` installs Debian's prometheus-alertmanager"
    path = folder / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    answer = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip().split(",")
