"""`mlops backfill`'s logic: one run per calendar date, a few at a time, each finished run classified.

A backfill submits the pipeline once per date of an inclusive range, with that date as the run's
logical date (components/dated_inputs.py), keeps at most N runs in flight, and reports each date:

- `failed`: the run did not succeed (or its submit was refused), with the step and its message;
- `cached`: it succeeded and every memoized step was answered from the cache without running.
  On Argo a memoized node carries `memoizationStatus` ({hit, key, cacheName}, Argo's schema); a
  hit runs no pod. Steps that are not memoized (validate, drift, register) run on every run and do
  not count. With retries a memoized step is a Retry node whose attempts are Pod nodes of the
  same template; an attempt that ran means the step ran. On Kubeflow Pipelines the v2beta1 API
  has no CACHED task state (kfp_server_api's V2beta1RuntimeState); a cache hit shows as the
  component's `executor` node SKIPPED (KFP's compiler runs the executor only `when` the driver's
  `cached-decision` is not true), so a run is cached when it has executors and all were skipped;
- `ran` otherwise: when in doubt (no memoized node, no executor reported), a run is said to have
  run, never to have been cached.

The exit code is 0 when every date ran or was cached, 2 when a date failed permanently (a failed
pod that exited 2, components/errors.py, or was killed for memory: the same limit fails the same
way), and 75 when every failure may pass on a rerun, which reruns only what is not cached.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from components.dated_inputs import logical_date
from components.errors import PERMANENT_EXIT_CODE, TRANSIENT_EXIT_CODE, ComponentError, TransientError

__all__ = [
    "CACHED",
    "FAILED",
    "MAX_DATES",
    "RAN",
    "STEP",
    "Engine",
    "Outcome",
    "argo_outcome",
    "check_parallel",
    "dates_between",
    "exit_code",
    "kfp_outcome",
    "refused",
    "run_all",
    "summary",
    "table",
]

STEP = "backfill"
RAN, CACHED, FAILED = "ran", "cached", "failed"
MAX_DATES = 366
"""A year of days, leap day included: a longer range is more likely a typo than a plan."""
_POD_FAILED = ("Failed", "Error")
_KFP_EXECUTOR = "executor"
_EXIT_IN_MESSAGE = re.compile(r"\bexit(?:ed| code| status)\s*:?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one date's run."""

    day: dt.date
    run: str
    """The Argo workflow's name or the KFP run's id; empty when the submit was refused."""
    result: str
    step: str = ""
    message: str = ""
    permanent: bool = False
    """For a failure: whether rerunning cannot help (exit 2, killed for memory, a refused submit)."""


class Engine(Protocol):
    """One orchestrator's side of a backfill (mlops/cli/backfill.py has Argo's and KFP's)."""

    def submit(self, day: dt.date) -> str:
        """Start the date's run; its name or id."""
        ...

    def poll(self, run: str) -> dict[str, Any] | None:
        """The run's document once it has ended; None while it runs."""
        ...

    def classify(self, day: dt.date, run: str, document: dict[str, Any]) -> Outcome:
        """The finished run as an Outcome (argo_outcome or kfp_outcome)."""
        ...

    def stops(self, error: ComponentError) -> bool:
        """Whether the error ends the whole backfill (the server refused the credentials) rather than one date."""
        ...


def _day(text: str, flag: str) -> dt.date:
    day = logical_date(text, step=STEP)
    if day is None:
        raise ComponentError(STEP, f"{flag} is empty", f"pass {flag} YYYY-MM-DD")
    return day


def dates_between(start: str, end: str) -> list[dt.date]:
    """Every calendar date from `start` to `end`, both included (YYYY-MM-DD); refused when the range
    runs backwards or holds more than MAX_DATES dates."""
    first, last = _day(start, "--from"), _day(end, "--to")
    if first > last:
        raise ComponentError(
            STEP, f"--from {first} is after --to {last}", f"swap them: --from {last} --to {first} (both included)"
        )
    count = (last - first).days + 1
    if count > MAX_DATES:
        raise ComponentError(
            STEP,
            f"{first} to {last} is {count} dates; a backfill runs at most {MAX_DATES}",
            "split the range into backfills of a year or less, one after the other",
        )
    return [first + dt.timedelta(days=offset) for offset in range(count)]


def check_parallel(parallel: int) -> int:
    """`--parallel`, refused below 1."""
    if parallel < 1:
        raise ComponentError(STEP, f"--parallel {parallel} would run nothing", "pass --parallel 1 or more")
    return parallel


def _exit_code(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _permanent(code: int | None, message: str) -> bool:
    from pipelines.resources import killed_for_memory

    return code == PERMANENT_EXIT_CODE or killed_for_memory(message)


def _templates(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    stored = (document.get("status", {}).get("storedWorkflowTemplateSpec") or {}).get("templates") or []
    return [*stored, *(document.get("spec", {}).get("templates") or [])]


def argo_outcome(day: dt.date, run: str, document: Mapping[str, Any]) -> Outcome:
    """An ended Argo workflow: failed unless Succeeded; cached when every node of a memoized step
    (a node with memoizationStatus, or a Pod of a template with memoize) was a cache hit; ran otherwise."""
    from mlops.argo_client import node_rows

    status = document.get("status", {}) or {}
    nodes: dict[str, Any] = status.get("nodes", {}) or {}
    if status.get("phase") != "Succeeded":
        failed = [r for r in node_rows(dict(document)) if r["type"] == "Pod" and r["phase"] in _POD_FAILED]
        codes = [_exit_code(r["exit_code"]) for r in failed]
        permanent = [r for r, c in zip(failed, codes, strict=True) if _permanent(c, str(r["message"]))]
        if not failed:
            return Outcome(day=day, run=run, result=FAILED, step="-", message=str(status.get("message") or ""))
        shown = (permanent or failed)[0]
        return Outcome(
            day=day,
            run=run,
            result=FAILED,
            step=str(shown["template"] or shown["name"]),
            message=str(shown["message"] or f"exit code {shown['exit_code']}"),
            permanent=bool(permanent),
        )
    memoized = {str(t.get("name")) for t in _templates(document) if t.get("memoize")}
    keyed = [
        node
        for node in nodes.values()
        if node.get("memoizationStatus") or (node.get("type") == "Pod" and node.get("templateName") in memoized)
    ]
    hits = all((node.get("memoizationStatus") or {}).get("hit") is True for node in keyed)
    return Outcome(day=day, run=run, result=CACHED if keyed and hits else RAN)


def kfp_outcome(day: dt.date, run: str, document: Mapping[str, Any]) -> Outcome:
    """An ended KFP run (kfp_client.get_run): failed unless SUCCEEDED; cached when it reports executor
    tasks and every one was SKIPPED (a cache hit, see the module's docstring); ran otherwise. KFP
    records no exit code: a failed task's message is read for one (`exit code 2`, `exited 2`)."""
    tasks = list(((document.get("run_details") or {}).get("task_details")) or [])
    if document.get("state") != "SUCCEEDED":
        failed = [t for t in tasks if t.get("state") == "FAILED"]
        messages = [str((t.get("error") or {}).get("message") or "") for t in failed]
        permanent = [t for t, m in zip(failed, messages, strict=True) if _permanent(_code_in(m), m)]
        shown = (permanent or [t for t, m in zip(failed, messages, strict=True) if m] or failed or [None])[0]
        if shown is None:
            message = str((document.get("error") or {}).get("message") or f"ended {document.get('state')}")
            return Outcome(day=day, run=run, result=FAILED, step="-", message=message)
        return Outcome(
            day=day,
            run=run,
            result=FAILED,
            step=str(shown.get("display_name") or "-"),
            message=str((shown.get("error") or {}).get("message") or ""),
            permanent=bool(permanent),
        )
    executors = [t for t in tasks if t.get("display_name") == _KFP_EXECUTOR and not t.get("child_tasks")]
    cached = bool(executors) and all(t.get("state") == "SKIPPED" for t in executors)
    return Outcome(day=day, run=run, result=CACHED if cached else RAN)


def _code_in(message: str) -> int | None:
    match = _EXIT_IN_MESSAGE.search(message)
    return int(match.group(1)) if match else None


def refused(day: dt.date, run: str, error: ComponentError) -> Outcome:
    """A date whose submit (or a read of its run) the server refused: failed, permanent unless transient."""
    return Outcome(
        day=day,
        run=run,
        result=FAILED,
        step=error.step,
        message=f"{error.problem} (fix: {error.fix})",
        permanent=not isinstance(error, TransientError),
    )


def run_all(
    engine: Engine,
    days: Sequence[dt.date],
    *,
    parallel: int,
    poll_seconds: float,
    report: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Each date's run, at most `parallel` in flight, started in date order; the outcomes by date.
    A refused submit or read fails that date only, unless `engine.stops` says it ends the backfill."""
    check_parallel(parallel)
    pending = list(days)
    flying: dict[str, dt.date] = {}
    outcomes: list[Outcome] = []

    def failed(day: dt.date, run: str, error: ComponentError) -> None:
        if engine.stops(error):
            raise error
        outcomes.append(refused(day, run, error))
        report(f"{day}: {FAILED} ({error.problem})")

    while pending or flying:
        while pending and len(flying) < parallel:
            day = pending.pop(0)
            try:
                run = engine.submit(day)
            except ComponentError as error:
                failed(day, "", error)
                continue
            flying[run] = day
            report(f"{day}: submitted {run}")
        ended = 0
        for run, day in list(flying.items()):
            try:
                document = engine.poll(run)
            except ComponentError as error:
                del flying[run]
                failed(day, run, error)
                ended += 1
                continue
            if document is not None:
                del flying[run]
                outcome = engine.classify(day, run, document)
                outcomes.append(outcome)
                report(f"{day}: {run} {outcome.result}")
                ended += 1
        if flying and not ended:
            sleep(poll_seconds)
    return sorted(outcomes, key=lambda outcome: outcome.day)


def table(outcomes: Iterable[Outcome]) -> str:
    """A line per date: date, run, result, and for a failure its step and message."""
    rows = [("date", "run", "result", "step", "message")]
    rows += [(str(o.day), o.run or "-", o.result, o.step, " ".join(o.message.split())) for o in outcomes]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def exit_code(outcomes: Iterable[Outcome]) -> int:
    """0 when no date failed; 2 when one failed permanently; 75 when every failure may pass on a rerun."""
    failures = [o for o in outcomes if o.result == FAILED]
    if not failures:
        return 0
    return PERMANENT_EXIT_CODE if any(o.permanent for o in failures) else TRANSIENT_EXIT_CODE


def summary(outcomes: Sequence[Outcome]) -> str:
    """One line: how many dates ran, were cached and failed, and what the exit code means."""
    counts = {result: sum(o.result == result for o in outcomes) for result in (RAN, CACHED, FAILED)}
    code = exit_code(outcomes)
    meaning = {
        0: "every date ran or was cached",
        PERMANENT_EXIT_CODE: "a date failed permanently: fix what its step names, then rerun the backfill",
        TRANSIENT_EXIT_CODE: "the failures may pass next time: rerun the backfill (it reruns only what is not cached)",
    }[code]
    return (
        f"{len(outcomes)} dates: {counts[RAN]} ran, {counts[CACHED]} cached, {counts[FAILED]} failed; "
        f"exit {code}: {meaning}"
    )
