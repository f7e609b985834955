"""Turn kfp.local's verbose output into one line per step; keep the whole log in a file.

A step's failure is reported with its cause, never as a bare FAIL: a ComponentError's problem and
fix (the `ERROR [step]` lines pipelines/runtime.py prints), or, for an exception no component
explained, its type, its message, where it was raised and the log line its traceback starts at.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["ANSI", "CACHE_HIT", "EXECUTING", "FAILURE_CLASS", "FINISHED", "StepProgress", "run_streaming"]

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXECUTING = re.compile(r"Executing task '([\w-]+)'")
FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
CACHE_HIT = re.compile(r"Task ([\w-]+) cache hit \(key=(\w+)\)")
FAILURE_CLASS = re.compile(r"failure: (\w+) \(exit (\d+)")
TRACEBACK = "Traceback (most recent call last):"
FRAME = re.compile(r'^File "(.+)", line (\d+)')


class StepProgress:
    """Reads the stream line by line and reports step starts, summaries and failures."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.started: dict[str, float] = {}
        self.summaries: dict[str, dict[str, object]] = {}
        self.errors: list[str] = []
        self.cached: set[str] = set()
        """Steps kfp.local answered from its cache (same key: data digest, arguments, code)."""
        self.failure_exit_code: int | None = None
        """The exit code of the failed step's class (components/errors.py), when it printed one."""
        self._in_error = False
        self.log_path: Path | None = None
        """The file the stream is written to (run_streaming sets it): failures name its lines."""
        self.lines = 0
        """Lines read so far: the number of the log line being read."""
        self._traceback: _Traceback | None = None
        self.unexpected: str | None = None
        """The last traceback's exception, as `unexpected Type: message (raised at ...; traceback at ...)`."""

    def feed(self, raw: str) -> None:
        self.lines += 1
        line = ANSI.sub("", raw.rstrip("\n"))
        text = line.strip()
        if match := EXECUTING.search(line):
            self.started[match.group(1)] = time.perf_counter()
            self.errors = []
            self._in_error = False
            self._traceback, self.unexpected = None, None
            self.emit(f"  ... {match.group(1)}")
            return
        if match := CACHE_HIT.search(line):
            self.cached.add(match.group(1))
            self.emit(f"  ok   {match.group(1):<12}    -    cached: inputs unchanged (data digest, arguments, code)")
            return
        if match := FINISHED.search(line):
            step, status = match.groups()
            took = time.perf_counter() - self.started.get(step, time.perf_counter())
            mark = "ok  " if status == "SUCCESS" else "FAIL"
            if status != "SUCCESS" and not self.errors and self.unexpected:
                self.errors = [self.unexpected]
            detail = _brief(self.summaries.get(step, {})) if status == "SUCCESS" else " ".join(self.errors[:1])
            self.emit(f"  {mark} {step:<12} {took:6.1f}s  {detail}")
            return
        if text.startswith("{") and '"step":' in text:
            try:
                summary = json.loads(text)
            except json.JSONDecodeError:
                return
            self.summaries[str(summary.get("step"))] = summary
            return
        if self._read_traceback(line, text):
            return
        if text.startswith("ERROR ["):
            self._in_error = True
            self.errors.append(text.removeprefix("ERROR "))
            return
        if match := FAILURE_CLASS.search(text):
            self.failure_exit_code = int(match.group(2))
        if self._in_error:
            if text and not text.startswith("[KFP") and not text.startswith("Traceback"):
                self.errors.append(text)
            else:
                self._in_error = False

    def _read_traceback(self, line: str, text: str) -> bool:
        """Follow a step's traceback: its frames, then its last line (`Type: message`), which
        becomes the step's error if the step ends in FAILURE with nothing a component explained."""
        indent = len(line) - len(line.lstrip())
        if text == TRACEBACK:
            self._traceback = _Traceback(indent=indent, starts=self.lines)
            self._in_error = False
            return True
        trace = self._traceback
        if trace is None:
            return False
        if match := FRAME.match(text):
            trace.frame = f"{match.group(1)}:{match.group(2)}"
        elif text and indent <= trace.indent:
            where = f"{self.log_path}:{trace.starts}" if self.log_path else f"log line {trace.starts}"
            self.unexpected = f"unexpected {text} (raised at {trace.frame}; traceback at {where})"
            self._traceback = None
        return True


class _Traceback:
    """A traceback being read: how far its lines are indented, its first log line, its last frame."""

    def __init__(self, indent: int, starts: int) -> None:
        self.indent, self.starts, self.frame = indent, starts, "?"


def _brief(summary: dict[str, object]) -> str:
    keys = (
        "rows",
        "training_rows",
        "online_entities_written",
        "device",
        "rows_per_second",
        "roc_auc",
        "mape",
        "rmse",
        "passed",
        "version",
        "reused",
        "canary_percent",
        "value",
        "threshold",
    )
    return ", ".join(f"{key}={summary[key]}" for key in keys if key in summary)


def run_streaming(
    command: list[str], log_path: Path, progress: StepProgress, verbose: bool, out: IO[str] = sys.stdout
) -> int:
    """Run `command`, writing all output to `log_path` and progress (or everything) to `out`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress.log_path = log_path
    with (
        open(log_path, "w") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as child,
    ):
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            if verbose:
                out.write(line)
            progress.feed(line)
        if not progress.errors and progress.unexpected:  # it failed outside any step: still say why
            progress.errors = [progress.unexpected]
        return child.wait()
