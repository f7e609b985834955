"""Test-only: what Prometheus stores of one scraped sample, reduced to what the Pushgateway scrape
uses, because the cluster's Prometheus does not run here (the loopback stack runs a real one).

Prometheus's order (scrape/scrape.go): the target's labels come from its discovered labels
through `relabel_configs` (`instance` defaults to `__address__`, then every `__`-prefixed label
goes); each scraped sample then takes the target's labels: with honor_labels false a sample label
the target also has is kept as `exported_<name>` (when not empty) and the target's value wins,
with honor_labels true the sample's wins; `metric_relabel_configs` run last. Relabel actions:
replace, keep, drop, labeldrop, labelkeep, with Prometheus's defaults (separator `;`, regex
`(.*)`, replacement `$1`) and fully anchored regexes (Go's RE2; the rules here use its common
subset with Python's `re`).
"""

from __future__ import annotations

import re
from typing import Any

Labels = dict[str, str]


def _expand(replacement: str, match: re.Match[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))) or "", replacement)


def relabel(labels: Labels, rules: list[dict[str, Any]]) -> Labels | None:
    """prometheus.yml relabel rules (snake_case) on a label set; None when a rule drops it."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace").lower()
        regex = re.compile(f"^(?:{rule.get('regex', '(.*)')})$")
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("source_labels", []))
        if action == "keep" and not regex.match(value):
            return None
        if action == "drop" and regex.match(value):
            return None
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if regex.match(k)}
        elif action == "replace":
            match = regex.match(value)
            if match:
                target = _expand(rule["target_label"], match)
                result = _expand(rule.get("replacement", "$1"), match)
                if result:
                    labels[target] = result
                else:
                    labels.pop(target, None)
        elif action not in {"keep", "drop"}:
            raise ValueError(f"relabel action {action!r}: not in this stand-in")
    return labels


def target_labels(discovered: Labels, relabel_configs: list[dict[str, Any]]) -> Labels | None:
    labels = relabel(discovered, relabel_configs)
    if labels is None:
        return None
    labels.setdefault("instance", labels.get("__address__", ""))
    return {k: v for k, v in labels.items() if not k.startswith("__")}


def stored(
    sample: Labels, target: Labels, metric_relabel_configs: list[dict[str, Any]], *, honor_labels: bool
) -> Labels | None:
    """The labels Prometheus stores for one scraped sample (`__name__` included), or None if dropped."""
    labels = dict(sample)
    for name, value in target.items():
        if honor_labels:
            labels.setdefault(name, value)
            continue
        if labels.get(name):
            labels[f"exported_{name}"] = labels[name]
        labels[name] = value
    return relabel(labels, metric_relabel_configs)
