"""Argo's rules as the controller stand-in applies them (tests/integration/argo_controller_stand_in.py):
the forms the renderer writes, and what Argo's controller does with them, as pure functions."""

from __future__ import annotations

import json
import re
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
EXPRESSION = re.compile(r"^asInt\(lastRetry\.exitCode\) != (\d+)(?: && not \(lastRetry\.message matches '([^']+)'\))?$")
"""`asInt(lastRetry.exitCode) != N`, optionally `&& not (lastRetry.message matches 'RE')` (Argo 3.5+)."""
SHA256_TAG = re.compile(r"=sprig\.trunc\((\d+), sprig\.sha256sum\(workflow\.parameters\['([\w-]+)'\]\)\)")
TRUNC_TAG = re.compile(r"=sprig\.trunc\((\d+), (tasks\.\w+\.outputs\.parameters\.\w+)\)")
"""`=sprig.trunc(N, tasks.<task>.outputs.parameters.<name>)` (pipelines.caching.output_digest_word)."""
CACHE_KEY = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")  # workflow/controller/cache: cacheKeyRegex
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")  # k8s IsConfigMapKey
CONFIGMAP_KEY_MAX = 253
# retryPolicy -> (retry a Failed attempt, retry an Error attempt); OnTransientError reads the message
RETRY_POLICIES = {"Always": (True, True), "OnFailure": (True, False), "OnError": (False, True)}
# util/errors IsTransientErr: the messages it treats as transient (network and quota errors)
TRANSIENT_MESSAGES = re.compile(
    r"connection reset by peer|connection refused|i/o timeout|TLS handshake timeout|no such host"
    r"|exceeded quota|too many requests|etcdserver: leader changed"
)


def validate_inputs(templates: dict[str, dict[str, Any]]) -> None:
    """Argo's validation: a template may refer only to the inputs it declares."""
    for name, template in templates.items():
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        body = json.dumps({k: v for k, v in template.items() if k not in ("dag", "inputs")})
        for reference in PLACEHOLDER.findall(body):
            if (
                reference.startswith("inputs.parameters.")
                and reference.removeprefix("inputs.parameters.") not in declared
            ):
                raise ValueError(f"templates.{name}: failed to resolve {{{{{reference}}}}}: no such input declared")


def pod_name(workflow: str, node: str, template: str) -> str:
    """Argo's pod name (POD_NAMES v2): <workflow>-<template>-<fnv32a of the node name>."""
    digest = 0x811C9DC5
    for byte in node.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workflow}-{template}-{digest}"


def failed_nodes(workflow: str, entrypoint: str, phase: str, nodes: Any, finished: str) -> list[dict[str, str]]:
    """`{{workflow.failures}}` as the controller builds it: every Failed or Error node of the run
    (the DAG, each task's node and, under a retryStrategy, each failed attempt `task(n)`)."""
    failed = ("Failed", "Error")
    rows = [(workflow, entrypoint, phase, "", finished)] if phase in failed else []
    for node in nodes:
        if node.phase in failed:
            rows.append((node.name, node.template, node.phase, node.message, node.finished_at or finished))
            if node.retried:
                rows += [
                    (f"{node.name}({number})", node.template, attempt.phase, attempt.message, attempt.finished_at)
                    for number, attempt in enumerate(node.attempts)
                    if attempt.phase in failed
                ]
    return [
        {
            "displayName": display,
            "message": message,
            "templateName": template,
            "phase": node_phase,
            "podName": workflow if display == workflow else pod_name(workflow, f"{workflow}.{display}", template),
            "finishedAt": at,
        }
        for display, template, node_phase, message, at in rows
    ]


def substitute(text: str, scope: dict[str, str]) -> str:
    """Simple tags from the scope; expression tags (`{{=...}}`) of the one form rendered."""

    def value(match: re.Match[str]) -> str:
        if match.group(1).startswith("="):
            return expression_tag(match.group(1), scope)
        if match.group(1) not in scope:
            raise KeyError(f"unresolved placeholder {match.group(0)} in {text!r}")
        return scope[match.group(1)]

    return PLACEHOLDER.sub(value, text)


def expression_tag(tag: str, scope: dict[str, str]) -> str:
    """`=sprig.trunc(N, sprig.sha256sum(workflow.parameters['name']))` (pipelines.caching.run_input_word),
    evaluated as expr with sprig does: the first N hex digits of the value's sha256; and
    `=sprig.trunc(N, tasks.<task>.outputs.parameters.<name>)`: the output's first N characters."""
    import hashlib

    truncated = TRUNC_TAG.fullmatch(tag)
    if truncated is not None:  # expr resolves the dotted name in the task's scope; sprig.trunc cuts it
        if truncated.group(2) not in scope:
            raise KeyError(f"unresolved variable {truncated.group(2)} in {{{{{tag}}}}}")
        return scope[truncated.group(2)][: int(truncated.group(1))]
    match = SHA256_TAG.fullmatch(tag)
    if match is None:
        raise ValueError(f"unsupported expression tag {{{{{tag}}}}}")
    value = scope[f"workflow.parameters.{match.group(2)}"]
    return hashlib.sha256(value.encode()).hexdigest()[: int(match.group(1))]


def depends(task: dict[str, Any]) -> list[str]:
    """The upstream tasks of the only `depends` form the renderer writes: `a.Succeeded && b.Succeeded`."""
    clauses = task.get("depends", "").split(" && ") if task.get("depends") else []
    if any(not clause.endswith(".Succeeded") for clause in clauses):
        raise ValueError(f"unsupported depends expression {task['depends']!r}")
    return [clause.removesuffix(".Succeeded") for clause in clauses]


def when(expression: str) -> bool:
    """The `when` forms the renderer writes: `A == B` and `A != B` on plain strings, joined by &&."""
    if " && " in expression:
        return all(when(clause) for clause in expression.split(" && "))
    for operator in (" == ", " != "):
        if operator in expression:
            left, right = (side.strip() for side in expression.split(operator, 1))
            return (left == right) == (operator == " == ")
    raise ValueError(f"unsupported when expression {expression!r}")


def expression_retries(expression: str | None, exit_code: int | None, message: str) -> bool:
    """The retry expression's value for the last attempt (Argo: lastRetry.exitCode, lastRetry.message)."""
    if expression is None:
        return True
    match = EXPRESSION.match(expression)
    if match is None:
        raise ValueError(f"unsupported retry expression {expression!r}")
    if exit_code == int(match.group(1)):
        return False
    return match.group(2) is None or re.search(match.group(2), message) is None


OOM_EXIT_CODE = 137
"""A pod whose main container the kernel killed at its memory limit: Argo's node message is
`OOMKilled (exit code 137)` (the container's terminated reason and code); the stand-in's launcher
reports it by exiting 137."""


def duration(text: str) -> float:
    match = re.fullmatch(r"(\d+)([smh]?)", str(text))
    if match is None:
        raise ValueError(f"unsupported duration {text!r}")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def backoff_seconds(backoff: dict[str, Any], attempt_number: int) -> float:
    if not backoff:
        return 0.0
    wait = duration(backoff.get("duration", "0")) * float(backoff.get("factor", 1)) ** (attempt_number - 1)
    return min(wait, duration(backoff["cap"])) if "cap" in backoff else wait
