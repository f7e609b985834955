"""Test-only: the Prometheus Operator's merge of tenants' AlertmanagerConfigs into one routing
tree, reduced to what routing needs, because no operator runs here; Alertmanager's own router
(`amtool config routes test`) then answers where an alert goes.

What the operator does (pkg/alertmanager/amcfg.go: AddAlertmanagerConfigs, convertRoute and the
namespace enforcer), as far as these tests rely on it: the AlertmanagerConfigs, in
`<namespace>/<name>` order, each give one route, placed before the base configuration's routes
under the root. Each route is converted as written, child routes included: `receiver` renamed
`<namespace>/<name>/<receiver>` (an empty one stays empty, inherited), `groupBy`, `groupWait`,
`groupInterval`, `repeatInterval` and `continue` carried over, and each matcher written as
`name<matchType>"value"` (an empty matchType is `=`, or `=~` with the deprecated `regex: true`).
The top route of each AlertmanagerConfig then gets the matcher `namespace="<its namespace>"`
appended (the CRD: "the Alertmanager configuration only applies to alerts for which the
namespace label is equal to the namespace of the AlertmanagerConfig resource") and
`continue: true`, so that every tenant's tree is tried. Receivers keep only their names (routing
does not read their integrations). `scoped=False` leaves out the namespace matcher, as an
operator run with alertmanagerConfigMatcherStrategy None would (`continue: true` stays). A field
of a route, matcher or spec that this does not model raises.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = "root-oncall"

_ROUTE_FIELDS = {
    "groupBy": "group_by",
    "groupWait": "group_wait",
    "groupInterval": "group_interval",
    "repeatInterval": "repeat_interval",
}
_MATCH_TYPES = {"=", "!=", "=~", "!~"}


def _escape(value: str) -> str:
    """The operator's openMetricsEscape of a matcher's value."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _matcher(matcher: dict[str, Any]) -> str:
    unknown = set(matcher) - {"name", "value", "matchType", "regex"}
    if unknown:
        raise ValueError(f"matcher fields {sorted(unknown)}: not in this stand-in")
    match_type = matcher.get("matchType") or ("=~" if matcher.get("regex") else "=")
    if match_type not in _MATCH_TYPES:
        raise ValueError(f"matchType {match_type!r}: not an AlertmanagerConfig match type")
    return f'{matcher["name"]}{match_type}"{_escape(matcher.get("value", ""))}"'


def _route(route: dict[str, Any], prefix: str) -> dict[str, Any]:
    unknown = set(route) - {"receiver", "matchers", "continue", "routes", *_ROUTE_FIELDS}
    if unknown:
        raise ValueError(f"route fields {sorted(unknown)}: not in this stand-in")
    merged: dict[str, Any] = {}
    if route.get("receiver"):
        merged["receiver"] = prefix + route["receiver"]
    merged |= {snake: route[camel] for camel, snake in _ROUTE_FIELDS.items() if route.get(camel)}
    if route.get("continue"):
        merged["continue"] = True
    if route.get("matchers"):
        merged["matchers"] = [_matcher(m) for m in route["matchers"]]
    if route.get("routes"):
        merged["routes"] = [_route(child, prefix) for child in route["routes"]]
    return merged


def merge(configs: list[dict[str, Any]], *, scoped: bool = True) -> dict[str, Any]:
    """One alertmanager.yml of the tenants' AlertmanagerConfig objects."""
    routes, receivers = [], [{"name": ROOT}]
    for config in sorted(configs, key=lambda c: (c["metadata"]["namespace"], c["metadata"]["name"])):
        unknown = set(config["spec"]) - {"route", "receivers"}
        if unknown:
            raise ValueError(f"AlertmanagerConfig fields {sorted(unknown)}: not in this stand-in")
        if not config["spec"].get("route"):
            continue  # the operator skips it, receivers included
        namespace = config["metadata"]["namespace"]
        prefix = f"{namespace}/{config['metadata']['name']}/"
        route = _route(config["spec"]["route"], prefix)
        if scoped:
            route["matchers"] = [*route.get("matchers", []), f'namespace="{_escape(namespace)}"']
        routes.append({**route, "continue": True})
        receivers += [{"name": prefix + receiver["name"]} for receiver in config["spec"].get("receivers", [])]
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
