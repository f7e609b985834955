"""What a step needs at run time inside the orchestrator: resolve pipeline resources, call the
component, print its one-line JSON summary, and end with the exit code of its failure class.

Orchestrator-specific wrappers (KFP ops, Argo containers) call only this, so every engine
reports a failure the same way: the problem, the fix, and whether a retry can help
(components/errors.py derives the exit code: 2 permanent, 75 transient, 1 unexpected).

Where the engine cannot tell exit codes apart (KFP), the step retries its own transient
failures: MLOPS_STEP_RETRY holds the step's declared retry policy, and a permanent failure
ends the step at once.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "STEP_RETRY_VARIABLE",
    "call_component",
    "component",
    "parse_settings_arguments",
    "resource",
    "run_step",
    "settings_model",
]

STEP_RETRY_VARIABLE = "MLOPS_STEP_RETRY"


def resource(reference: str) -> str:
    """'pipelines.fraud/expectations.json' -> a filesystem path inside the installed package."""
    package, _, relative = reference.partition("/")
    return str(Path(str(resources.files(package))) / relative)


def component(target: str) -> Any:
    """'components.steps.train:train' -> the function."""
    module_name, _, function_name = target.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def settings_model(annotation: Any) -> Any:
    """The pydantic settings model a component parameter is annotated with, else None."""
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def parse_settings_arguments(target: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments as they arrive from a task or the command line, with each one the component
    annotates with a settings model (its config section, as JSON or a mapping) parsed into it:
    a bad field is refused by name, permanently (exit 2), before the component starts."""
    import typing

    from components.config import parse_settings

    parsed = dict(kwargs)
    step = target.partition(":")[2]
    for name, annotation in typing.get_type_hints(component(target)).items():
        model = settings_model(annotation)
        if model is not None and parsed.get(name) is not None:
            parsed[name] = parse_settings(model, parsed[name], step)
    return parsed


def call_component(target: str, /, *args: Any, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = component(target)(*args, **parse_settings_arguments(target, kwargs))
    return result


def _in_step_retries() -> Any:
    from pipelines.spec import RetryPolicy

    text = os.environ.get(STEP_RETRY_VARIABLE, "")
    return RetryPolicy.from_json(text) if text else None


def run_step(target: str, /, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call the component; on a failure print problem, fix and class, and exit with its code.

    An exception no component explained and that is no known service failure keeps Python's
    traceback and exit 1, which Argo retries (it may be transient).
    """
    from components.errors import classify

    step = target.partition(":")[2]
    policy = _in_step_retries()
    attempt = 0
    while True:
        try:
            summary = call_component(target, *args, **kwargs)
            break
        except Exception as error:
            failure = classify(error, step)
            if failure is None:
                raise
            if failure.retryable and policy is not None and attempt < policy.limit:
                attempt += 1
                wait = policy.wait_before(attempt)
                print(
                    f"RETRY {attempt}/{policy.limit} in {wait}s ({policy.name}): {failure.problem}",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(wait)
                continue
            print(f"ERROR {failure}", file=sys.stderr, flush=True)
            raise SystemExit(failure.exit_code) from None
    print(json.dumps(summary, default=str, sort_keys=True), flush=True)
    return summary
