"""What several command groups share: NAME=VALUE pairs from repeated flags, and `--set` config overrides."""

from __future__ import annotations

import json
from typing import Any

from components.errors import ComponentError

__all__ = ["config_overrides", "pairs"]


def pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """`--flag a=1 --flag b=2` as {a: 1, b: 2}; a value without `=` is refused, naming the flag."""
    found: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ComponentError("task", f"{flag} {item!r} is not NAME=VALUE", f"write {flag} name=value")
        found[key] = value
    return found


def config_overrides(items: list[str]) -> dict[str, Any]:
    """`--set train.seed=1 --set train.model_type=xgboost` as config overrides; a value that parses as JSON is JSON."""
    found: dict[str, Any] = {}
    for pair in items:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ComponentError(
                "run", f"--set {pair!r} is not key=value", "write e.g. --set train.model_type=pytorch_mlp"
            )
        try:
            found[key] = json.loads(value)
        except json.JSONDecodeError:
            found[key] = value
    return found
