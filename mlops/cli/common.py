"""What several command groups share: NAME=VALUE pairs from repeated flags."""

from __future__ import annotations

from components.errors import ComponentError

__all__ = ["pairs"]


def pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """`--flag a=1 --flag b=2` as {a: 1, b: 2}; a value without `=` is refused, naming the flag."""
    found: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ComponentError("task", f"{flag} {item!r} is not NAME=VALUE", f"write {flag} name=value")
        found[key] = value
    return found
