"""issue 31: an unexpected exception in a step is reported in the run's summary with its type, its
message and the log line to read, never only as `FAIL`; a ComponentError keeps its problem and fix.

A one-step kfp.local pipeline (about a second) runs its step through pipelines.runtime.run_step,
as every op does, on a target that raises; `mlops run`'s progress reader and summary read the stream.
"""

from __future__ import annotations

import io
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

from mlops.cli.run import _print_summary
from mlops.progress import StepProgress, run_streaming

PIPELINE = """
import sys
from kfp import dsl, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1])


@dsl.component
def materialize(target: str, where: str) -> str:
    import sys

    sys.path.insert(0, where)
    from pipelines.runtime import run_step

    run_step(target)
    return "done"


@dsl.pipeline
def p(target: str, where: str):
    materialize(target=target, where=where)


try:
    p(target=sys.argv[2], where=sys.argv[3])
except RuntimeError:
    raise SystemExit(1)
"""

STEPS = """
import pyarrow as pa

from components.errors import ComponentError


def materialize():
    pa.array([1_000_000_001], pa.timestamp("ns")).cast(pa.timestamp("us", tz="UTC"))


def explained():
    raise ComponentError("explained", "label column 'is_fraud' has 3 nulls", "drop unlabelled rows")
"""


def _run(tmp_path: Path, target: str) -> tuple[StepProgress, list[str], str, Path]:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    (tmp_path / "boom_steps.py").write_text(STEPS)
    lines: list[str] = []
    progress = StepProgress(lines.append)
    log = tmp_path / "logs" / "run.log"
    command = [sys.executable, str(tmp_path / "pipeline.py"), str(tmp_path / "root"), target, str(tmp_path)]
    code = run_streaming(command, log, progress, verbose=False, out=io.StringIO())
    assert code != 0, log.read_text()
    summary = io.StringIO()
    with redirect_stdout(summary):
        _print_summary("p", {"ok": False, "outputs": {}}, progress, 1.0, log)
    return progress, lines, summary.getvalue(), log


def test_an_unexpected_exception_is_summarised_with_type_message_and_log_line(tmp_path: Path) -> None:
    """issue 31: pyarrow's ArrowInvalid in a step showed `FAIL materialize` and no error line."""
    progress, lines, summary, log = _run(tmp_path, "boom_steps:materialize")
    failed = [line for line in lines if "FAIL" in line]
    assert failed and "ArrowInvalid" in failed[0], lines
    error = next(line for line in summary.splitlines() if line.strip().startswith("error"))
    assert "pyarrow.lib.ArrowInvalid: Casting from timestamp[ns] to timestamp[us, tz=UTC] would lose data" in error
    assert "raised at " in error
    where = error.rsplit("traceback at ", 1)[1].rstrip(")")
    path, _, number = where.rpartition(":")
    assert path == str(log)
    assert log.read_text().splitlines()[int(number) - 1].strip() == "Traceback (most recent call last):"
    assert progress.failure_exit_code is None  # unexpected: exit 1, which Argo may retry


def test_a_component_error_keeps_its_problem_and_fix(tmp_path: Path) -> None:
    """issue 31: the traceback reader leaves a ComponentError's own report (problem, fix, class) alone."""
    progress, lines, summary, _ = _run(tmp_path, "boom_steps:explained")
    assert "label column 'is_fraud' has 3 nulls" in summary and "fix: drop unlabelled rows" in summary
    assert "unexpected" not in summary
    assert any("FAIL" in line and "has 3 nulls" in line for line in lines), lines
    assert progress.failure_exit_code == 2


def test_the_reader_takes_the_last_of_chained_tracebacks() -> None:
    """issue 31: `raise X from Y` prints two tracebacks; the one the step died of is the last."""
    stream = textwrap.dedent(
        """\
        INFO - Executing task 'train'
            Traceback (most recent call last):
              File "/x/a.py", line 3, in f
                g()
            KeyError: 'rows'

            The above exception was the direct cause of the following exception:

            Traceback (most recent call last):
              File "/x/b.py", line 9, in h
                raise ValueError("no rows") from error
            ValueError: no rows
        ERROR - Task 'train' finished with status FAILURE
        """
    )
    lines: list[str] = []
    progress = StepProgress(lines.append)
    for line in stream.splitlines():
        progress.feed(line)
    assert progress.errors == ["unexpected ValueError: no rows (raised at /x/b.py:9; traceback at log line 9)"]


def test_a_failure_outside_any_step_still_says_why(tmp_path: Path) -> None:
    """issue 31: the run's process dying before a step starts (no task, so no FAIL line) still puts
    the exception in the summary's error line."""
    progress = StepProgress(lambda line: None)
    command = [sys.executable, "-c", "import json; json.loads('{not json')"]
    assert run_streaming(command, tmp_path / "run.log", progress, verbose=False, out=io.StringIO()) == 1
    (error,) = progress.errors
    assert error.startswith("unexpected json.decoder.JSONDecodeError: Expecting property name") and "run.log:1" in error
