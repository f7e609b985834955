"""The promtool rule tests (tests/monitoring/prometheus-rules.test.yaml) read as data: the input
series of a test group as label sets, so a test can hold them to what a scrape stores."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["PROMTOOL_CASES", "input_series"]

PROMTOOL_CASES = Path(__file__).parent / "prometheus-rules.test.yaml"


def input_series(group: str) -> list[dict[str, str]]:
    """The input series of one promtool test group, as label sets with `__name__`."""
    tests = yaml.safe_load(PROMTOOL_CASES.read_text())
    (test,) = [test for test in tests["tests"] if test["name"] == group]
    found = []
    for entry in test["input_series"]:
        name, body = re.fullmatch(r"(\w+)\{(.*)\}", entry["series"]).groups()  # type: ignore[union-attr]
        found.append({"__name__": name, **dict(re.findall(r'(\w+)="([^"]*)"', body))})
    return found
