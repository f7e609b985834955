"""What every `mlops doctor` check returns and reads: a finding with its fix, and the context."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FAIL", "OK", "SKIP", "WARN", "Context", "Finding"]

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Context:
    """What the checks read: the environment, optional manifests, the planned load."""

    env: dict[str, str]
    objects: list[dict[str, Any]]
    planned_writers: int = 50
    now: Callable[[], float] = time.time
