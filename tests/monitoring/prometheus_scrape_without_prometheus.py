"""Test-only: what Prometheus stores of one scraped sample, and the scrape config the Prometheus
Operator writes for a ServiceMonitor or a PodMonitor, reduced to what the Pushgateway's and the
transformers' scrapes use, because neither runs here (the loopback stack runs a real Prometheus,
without the operator).

The operator (pkg/prometheus/promcfg.go, generateServiceMonitorConfig), for one endpoint of a
ServiceMonitor with the default `endpoints` discovery role, writes `relabel_configs` in this order:
`job` saved as `__tmp_prometheus_job_name`; a `keep` per `selector.matchLabels` entry (and per
matchExpression); a `keep` on the endpoint's port name; `node`/`pod` from the endpoint's target;
`namespace`, `service`, `pod`, `container` from the discovered meta labels; a `drop` of Failed or
Succeeded pods; `targetLabels`, `podTargetLabels`; `job` from the Service's name (then from
`jobLabel`, when set); `endpoint` from the port name; THEN the endpoint's own `relabelings`; then
the sharding rules (one shard here: they keep every target). `metricRelabelings` become
`metric_relabel_configs` as they are. Fields of a ServiceMonitor this does not model raise.
For one endpoint of a PodMonitor (generatePodMonitorConfig, `pod` discovery role, the operator's
v0.93.0 the schema folder's CRD comes from): `job` saved; a `drop` of Failed or Succeeded pods
(filterRunning unset); a `keep` per selector entry on the pod's labels; a `keep` on the container
port's name (`port`, else its number for `portNumber`); `namespace`, `container`, `pod`;
`podTargetLabels`; `job` as `<namespace>/<name>` (then `jobLabel`); `endpoint` the port's name;
the endpoint's `relabelings`; the sharding rules.

Prometheus's order (scrape/target.go, scrape/scrape.go): a target's labels are its discovered
labels with `job` defaulting to the job name, through `relabel_configs`; `__meta_*` labels go,
`instance` defaults to `__address__`, and no `__`-prefixed label reaches a sample. Each scraped
sample then takes the target's labels: with honor_labels false a sample label the target also has
is kept as `exported_<name>` (`exported_exported_<name>` if that is taken, ...) only when it is not
empty, and the target's value wins; with honor_labels true a label the sample has (even empty)
wins. `metric_relabel_configs` run last, and an empty label is no label (labels.Builder, and the
TSDB drops empty values). Relabel actions: replace, keep, drop, labeldrop, labelkeep, lowercase,
uppercase, keepequal, dropequal, hashmod, with Prometheus's defaults (separator `;`, regex `(.*)`,
replacement `$1`), regexes fully anchored as `^(?s:...)$`, and Go's template expansion (`$1`,
`${1}`, `$name`, `$$`). The regexes are Go's RE2; the rules here use its common subset with
Python's `re`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

Labels = dict[str, str]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RELABEL_KEYS = {"source_labels", "separator", "target_label", "regex", "modulus", "replacement", "action"}


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's regexp.Expand: `$$` is `$`, `$name`/`${name}` a group by number or name (the longest
    run of letters, digits and `_`), unknown or unmatched groups are empty, a bad `$` is literal."""
    out, i = [], 0
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 == len(template):
            out.append(char)
            i += 1
            continue
        if template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        braced = template[i + 1] == "{"
        found = re.match(r"\{([A-Za-z0-9_]+)\}" if braced else r"[A-Za-z0-9_]+", template[i + 1 :])
        if not found:
            out.append("$")
            i += 1
            continue
        name = found.group(1) if braced else found.group(0)
        i += 1 + found.end()
        if name.isdigit():
            index = int(name)
            out.append((match.group(index) or "") if index <= (match.re.groups or 0) else "")
        else:
            out.append((match.group(name) or "") if name in match.re.groupindex else "")
    return "".join(out)


def _set(labels: Labels, name: str, value: str) -> None:
    """labels.Builder.Set: an empty value deletes."""
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)


def relabel(labels: Labels, rules: list[dict[str, Any]]) -> Labels | None:
    """prometheus.yml relabel rules (snake_case) on a label set; None when a rule drops it."""
    labels = {k: v for k, v in labels.items() if v}
    for rule in rules:
        unknown = set(rule) - _RELABEL_KEYS
        if unknown:
            raise ValueError(f"relabel fields {sorted(unknown)}: not in this stand-in")
        action = rule.get("action", "replace").lower()
        regex_text = rule.get("regex", "(.*)")
        regex = re.compile(f"(?s:{regex_text})")
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("source_labels", []))
        target = rule.get("target_label", "")
        replacement = rule.get("replacement", "$1")
        if action == "keep" and not regex.fullmatch(value):
            return None
        if action == "drop" and regex.fullmatch(value):
            return None
        if action == "keepequal" and labels.get(target, "") != value:
            return None
        if action == "dropequal" and labels.get(target, "") == value:
            return None
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if regex.fullmatch(k)}
        elif action == "lowercase":
            _set(labels, target, value.lower())
        elif action == "uppercase":
            _set(labels, target, value.upper())
        elif action == "hashmod":
            digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
            _set(labels, target, str(int.from_bytes(digest[8:], "big") % int(rule["modulus"])))
        elif action == "replace":
            if value == "" and regex_text == "(.*)" and "$" not in target + replacement:
                _set(labels, target, replacement)  # Prometheus's fast path
                continue
            match = regex.fullmatch(value)
            if match:
                name = _expand(target, match)
                if _NAME.fullmatch(name):  # an invalid target name: no change
                    _set(labels, name, _expand(replacement, match))
        elif action not in {"keep", "drop", "keepequal", "dropequal"}:
            raise ValueError(f"relabel action {action!r}: not in this stand-in")
    return labels


def target_labels(discovered: Labels, relabel_configs: list[dict[str, Any]], *, job_name: str = "") -> Labels | None:
    """A target's public labels: `job` defaults to the job name, then `relabel_configs`."""
    labels = dict(discovered)
    if job_name and not labels.get("job"):
        labels["job"] = job_name
    relabeled = relabel(labels, relabel_configs)
    if relabeled is None:
        return None
    assert relabeled.get("__address__"), "Prometheus refuses a target without __address__"
    relabeled = {k: v for k, v in relabeled.items() if not k.startswith("__meta_")}
    relabeled.setdefault("instance", relabeled["__address__"])
    return {k: v for k, v in relabeled.items() if not k.startswith("__")}


def stored(
    sample: Labels, target: Labels, metric_relabel_configs: list[dict[str, Any]], *, honor_labels: bool
) -> Labels | None:
    """The labels Prometheus stores for one scraped sample (`__name__` included), or None if dropped."""
    labels = dict(sample)
    if honor_labels:
        for name, value in target.items():
            if name not in sample:
                _set(labels, name, value)
    else:
        conflicts = [(name, sample[name]) for name in target if sample.get(name)]
        for name, value in target.items():
            _set(labels, name, value)
        for name, value in sorted(conflicts, key=lambda c: len(c[0])):
            exported = name
            while True:
                exported = "exported_" + exported
                if not labels.get(exported):
                    labels[exported] = value
                    break
    result = relabel(labels, metric_relabel_configs)
    return None if not result else {k: v for k, v in result.items() if v}


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _operator_relabel(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ServiceMonitor's RelabelConfigs as the operator writes them (generateRelabelConfig)."""
    keys = {"sourceLabels": "source_labels", "separator": "separator", "targetLabel": "target_label"}
    keys |= {"regex": "regex", "modulus": "modulus", "replacement": "replacement", "action": "action"}
    converted = []
    for rule in rules:
        unknown = set(rule) - set(keys)
        if unknown:
            raise ValueError(f"RelabelConfig fields {sorted(unknown)}: not in this stand-in")
        out = {keys[k]: v for k, v in rule.items() if v not in ("", None, [])}
        if "action" in out:
            out["action"] = out["action"].lower()
        converted.append(out)
    return converted


_SPEC_KEYS = {
    "selector",
    "namespaceSelector",
    "endpoints",
    "sampleLimit",
    "jobLabel",
    "targetLabels",
    "podTargetLabels",
}
_ENDPOINT_KEYS = {"port", "interval", "scrapeTimeout", "honorLabels", "followRedirects", "relabelings"}
_ENDPOINT_KEYS |= {"metricRelabelings"}


_ONE_SHARD: list[dict[str, Any]] = [  # one shard: $(SHARD) is 0 and the modulus 1
    {
        "source_labels": ["__address__", "__tmp_hash"],
        "target_label": "__tmp_hash",
        "regex": "(.+);",
        "replacement": "$1",
        "action": "replace",
    },
    {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
    {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"], "regex": "0;|.+;.+", "action": "keep"},
]


def _selector_rules(selector: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """A monitor's label selector as the operator's keep/drop rules on the discovered `role`'s
    (service or pod) labels."""
    rules: list[dict[str, Any]] = []
    for key in sorted(selector.get("matchLabels", {})):
        present = [
            f"__meta_kubernetes_{role}_label_{_sanitize(key)}",
            f"__meta_kubernetes_{role}_labelpresent_{_sanitize(key)}",
        ]
        rules.append({"action": "keep", "source_labels": present, "regex": f"({selector['matchLabels'][key]});true"})
    for expression in selector.get("matchExpressions", []):
        label = f"__meta_kubernetes_{role}_label_{_sanitize(expression['key'])}"
        exists = f"__meta_kubernetes_{role}_labelpresent_{_sanitize(expression['key'])}"
        values = f"({'|'.join(expression.get('values', []))});true"
        rules.append(
            {
                "In": {"action": "keep", "source_labels": [label, exists], "regex": values},
                "NotIn": {"action": "drop", "source_labels": [label, exists], "regex": values},
                "Exists": {"action": "keep", "source_labels": [exists], "regex": "true"},
                "DoesNotExist": {"action": "drop", "source_labels": [exists], "regex": "true"},
            }[expression["operator"]]
        )
    return rules


def _modelled(fields: dict[str, Any], known: set[str], what: str) -> None:
    """Refuse what the stand-in does not model, rather than read it as absent."""
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"{what} fields {sorted(unknown)}: not in this stand-in")


def _endpoint_config(
    endpoint: dict[str, Any], rules: list[dict[str, Any]], selected: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """What a ServiceMonitor's and a PodMonitor's endpoint give their scrape config alike."""
    return {
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        # the operator writes follow_redirects only when set; Prometheus's default follows them
        "follow_redirects": bool(endpoint.get("followRedirects", True)),
        "relabel_configs": rules,
        "metric_relabel_configs": _operator_relabel(endpoint.get("metricRelabelings", [])),
        "namespaces": selected.get("matchNames") or [meta["namespace"]],
    }


def service_monitor_scrape(monitor: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The scrape config the operator writes for endpoint `index` of `monitor` (endpoints role,
    one shard, no scrape class, no enforced namespace label): job_name, honor_labels,
    relabel_configs, metric_relabel_configs, and the namespaces it discovers in."""
    spec, meta = monitor["spec"], monitor["metadata"]
    _modelled(spec, _SPEC_KEYS, "ServiceMonitor")
    endpoint = spec["endpoints"][index]
    _modelled(endpoint, _ENDPOINT_KEYS, "endpoint")
    rules: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    rules += _selector_rules(spec.get("selector", {}), "service")
    if "port" not in endpoint:
        raise ValueError("an endpoint without `port` (targetPort): not in this stand-in")
    rules.append(
        {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"]}
    )
    kind = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
    rules += [
        {"source_labels": kind, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
        {"source_labels": kind, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
    ]
    for prefix, names in (("service", spec.get("targetLabels", [])), ("pod", spec.get("podTargetLabels", []))):
        for name in names:
            source = [f"__meta_kubernetes_{prefix}_label_{_sanitize(name)}"]
            rules.append(
                {"source_labels": source, "target_label": _sanitize(name), "regex": "(.+)", "replacement": "${1}"}
            )
    rules.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"})
    if spec.get("jobLabel"):
        source = [f"__meta_kubernetes_service_label_{_sanitize(spec['jobLabel'])}"]
        rules.append({"source_labels": source, "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    rules += _operator_relabel(endpoint.get("relabelings", []))
    rules += _ONE_SHARD
    selected = spec.get("namespaceSelector", {})
    if selected.get("any"):
        raise ValueError("namespaceSelector any: not in this stand-in")
    return {"job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
            **_endpoint_config(endpoint, rules, selected, meta)}  # fmt: skip


_POD_SPEC_KEYS = {"selector", "namespaceSelector", "podMetricsEndpoints", "sampleLimit", "jobLabel", "podTargetLabels"}
_POD_ENDPOINT_KEYS = {"port", "portNumber", "path", "interval", "scrapeTimeout", "honorLabels", "followRedirects"}
_POD_ENDPOINT_KEYS |= {"relabelings", "metricRelabelings"}


def pod_monitor_scrape(monitor: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The scrape config the operator writes for endpoint `index` of a PodMonitor (pod role, one
    shard, no scrape class, no enforced namespace label), shaped as service_monitor_scrape's, with
    the metrics path."""
    spec, meta = monitor["spec"], monitor["metadata"]
    _modelled(spec, _POD_SPEC_KEYS, "PodMonitor")
    endpoint = spec["podMetricsEndpoints"][index]
    _modelled(endpoint, _POD_ENDPOINT_KEYS, "podMetricsEndpoint")
    rules: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    rules.append({"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"})
    rules += _selector_rules(spec.get("selector", {}), "pod")
    if endpoint.get("port"):
        rules.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": endpoint["port"],
            }
        )
    elif endpoint.get("portNumber"):
        number = str(endpoint["portNumber"])
        rules.append(
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": number}
        )
    rules += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    for name in spec.get("podTargetLabels", []):
        source = [f"__meta_kubernetes_pod_label_{_sanitize(name)}"]
        rules.append({"source_labels": source, "target_label": _sanitize(name), "regex": "(.+)", "replacement": "${1}"})
    rules.append({"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"})
    if spec.get("jobLabel"):
        source = [f"__meta_kubernetes_pod_label_{_sanitize(spec['jobLabel'])}"]
        rules.append({"source_labels": source, "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    if endpoint.get("port"):
        rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    rules += _operator_relabel(endpoint.get("relabelings", []))
    rules += _ONE_SHARD
    selected = spec.get("namespaceSelector", {})
    if selected.get("any"):
        raise ValueError("namespaceSelector any: not in this stand-in")
    job_name = f"podMonitor/{meta['namespace']}/{meta['name']}/{index}"
    path = endpoint.get("path") or "/metrics"
    return {"job_name": job_name, "metrics_path": path, **_endpoint_config(endpoint, rules, selected, meta)}


def pod_target(pod: dict[str, Any], *, address: str, container: str, port: dict[str, Any] | None) -> Labels:
    """The labels Kubernetes `pod` discovery gives one container port of a running `pod` (its
    metadata: namespace, name, labels); `port` None is a container that declares none (Prometheus
    then makes one target of the container, with no port labels)."""
    meta = pod["metadata"]
    labels = {
        "__address__": f"{address}:{port['containerPort']}" if port else address,
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_phase": pod.get("phase", "Running"),
        "__meta_kubernetes_pod_ready": "true",
    }
    if port:
        labels["__meta_kubernetes_pod_container_port_name"] = port.get("name", "")
        labels["__meta_kubernetes_pod_container_port_number"] = str(port["containerPort"])
        labels["__meta_kubernetes_pod_container_port_protocol"] = port.get("protocol", "TCP")
    for key, value in meta.get("labels", {}).items():
        labels[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = value
        labels[f"__meta_kubernetes_pod_labelpresent_{_sanitize(key)}"] = "true"
    return labels


def endpoints_target(service: dict[str, Any], *, address: str, port: str, pod: str, container: str) -> Labels:
    """The labels Kubernetes `endpoints` discovery gives one ready Pod endpoint of `service`
    (the subset the rules above read)."""
    meta = service["metadata"]
    labels = {
        "__address__": address,
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_service_name": meta["name"],
        "__meta_kubernetes_endpoint_port_name": port,
        "__meta_kubernetes_endpoint_ready": "true",
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for key, value in meta.get("labels", {}).items():
        labels[f"__meta_kubernetes_service_label_{_sanitize(key)}"] = value
        labels[f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}"] = "true"
    return labels


def scrape(
    monitor: dict[str, Any], discovered: Labels, samples: list[Labels], *, honor_labels: bool | None = None
) -> list[Labels | None]:
    """What Prometheus stores of `samples` scraped from the target `discovered` by `monitor`'s first
    endpoint (a ServiceMonitor's or a PodMonitor's); `honor_labels` overrides the endpoint's (a
    control broken on purpose)."""
    config = pod_monitor_scrape(monitor) if monitor.get("kind") == "PodMonitor" else service_monitor_scrape(monitor)
    if discovered["__meta_kubernetes_namespace"] not in config["namespaces"]:
        return [None for _ in samples]
    target = target_labels(discovered, config["relabel_configs"], job_name=config["job_name"])
    if target is None:
        return [None for _ in samples]
    honor = config["honor_labels"] if honor_labels is None else honor_labels
    return [stored(sample, target, config["metric_relabel_configs"], honor_labels=honor) for sample in samples]
