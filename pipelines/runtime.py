"""What a step needs at run time inside the orchestrator: resolve pipeline resources, call the
component, print its one-line JSON summary, and turn a ComponentError into a clean exit.

Orchestrator-specific wrappers (KFP ops, Argo containers) call only this, so every engine
reports a failure the same way: the problem and the fix, not a traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

PERMANENT_FAILURE_EXIT_CODE = 2


def resource(reference: str) -> str:
    """'pipelines.fraud/expectations.json' -> a filesystem path inside the installed package."""
    package, _, relative = reference.partition("/")
    return str(Path(str(resources.files(package))) / relative)


def call_component(target: str, /, **kwargs: Any) -> dict[str, Any]:
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result: dict[str, Any] = function(**kwargs)
    return result


def run_step(target: str, /, **kwargs: Any) -> dict[str, Any]:
    """Call the component; on a ComponentError print problem and fix, and exit 2.

    Exit 2 marks a failure that retrying cannot fix (bad data, bad config); an unexpected
    exception keeps Python's exit 1 and its traceback, which may be transient.
    """
    from components.errors import ComponentError

    try:
        summary = call_component(target, **kwargs)
    except ComponentError as error:
        print(f"ERROR {error}", file=sys.stderr, flush=True)
        raise SystemExit(PERMANENT_FAILURE_EXIT_CODE) from None
    print(json.dumps(summary, default=str, sort_keys=True), flush=True)
    return summary
