"""validate: check the raw dataset against a Great Expectations suite before anything uses it.

GX 1.x runs in an ephemeral context (nothing written to a GX project folder): the suite is a
JSON file kept beside the pipeline, and the DataFrame is handed to the checkpoint at run time.
A Parquet dataset is validated in bounded batches whose results are combined
(components/steps/validate_batches.py, issue 33); a CSV file, a DVC pointer or a suite with an
expectation that does not combine is read whole.
A failing dataset stops the pipeline here, with each failed expectation named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import artifacts
from components.errors import ComponentError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from components.lineage import DatasetRecord

__all__ = [
    "SAMPLE_VALUES",
    "STEP",
    "describe_failure",
    "failures_of",
    "load_suite",
    "run_suite",
    "suite_runner",
    "validate",
]

STEP = "validate"
SAMPLE_VALUES = 5


def load_suite(suite_path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(suite_path)
    if not path.is_file():
        raise ComponentError(
            STEP, f"expectation suite not found at {path}", "pass the suite JSON kept in the pipeline folder"
        )
    try:
        suite = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ComponentError(
            STEP, f"expectation suite {path} is not valid JSON ({error})", "fix the JSON syntax"
        ) from error
    if not isinstance(suite, dict) or "expectations" not in suite or "name" not in suite:
        raise ComponentError(
            STEP,
            f"expectation suite {path} needs 'name' and 'expectations'",
            'write it as {"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}',
        )
    return suite


def _refuse_unknown_expectations(suite: dict[str, Any], suite_path: str) -> None:
    """GX logs an invalid expectation and drops it from the suite; a typo would silently turn a
    check off, so each one is built here first and any that fails stops the step."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    broken = []
    for index, entry in enumerate(suite["expectations"]):
        try:
            ExpectationConfiguration(type=entry["type"], kwargs=entry.get("kwargs", {})).to_domain_obj()
        except Exception as error:
            broken.append(f"#{index} {entry.get('type')!r}: {str(error).splitlines()[0][:200]}")
    if broken:
        raise ComponentError(
            STEP,
            f"expectation suite {suite_path} is not a valid GX 1.x suite: " + "; ".join(broken),
            "check each expectation's 'type' and 'kwargs' against the GX 1.x gallery",
        )


def _failure(result: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    outcome = result.get("result") or {}
    exception = result.get("exception_info") or {}
    entry: dict[str, Any] = {"expectation": config["type"], "kwargs": kwargs}
    for key in ("unexpected_count", "unexpected_percent", "observed_value", "element_count"):
        if outcome.get(key) is not None:
            entry[key] = outcome[key]
    samples = outcome.get("partial_unexpected_list")
    if samples:
        entry["sample_values"] = samples[:SAMPLE_VALUES]
    column = kwargs.get("column")
    if column is not None and column not in columns:
        entry["error"] = f"column '{column}' is missing from the dataset"
    elif exception.get("raised_exception"):
        entry["error"] = str(exception.get("exception_message", "")).splitlines()[0][:300]
    return entry


def describe_failure(failure: dict[str, Any]) -> str:
    """One line naming a failed expectation: its column, how many rows, what was observed."""
    column = failure["kwargs"].get("column")
    where = f" on column '{column}'" if column else ""
    parts = [f"{failure['expectation']}{where}"]
    if "unexpected_count" in failure:
        parts.append(f"{failure['unexpected_count']} rows ({failure.get('unexpected_percent', 0):.2f}%)")
    if "observed_value" in failure:
        parts.append(f"observed {failure['observed_value']!r}")
    if "sample_values" in failure:
        parts.append(f"e.g. {failure['sample_values']}")
    if "error" in failure:
        parts.append(failure["error"])
    return ": ".join(parts[:1]) + (" — " + "; ".join(parts[1:]) if len(parts) > 1 else "")


def suite_runner(suite_definition: dict[str, Any], suite_path: str) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
    """The suite as a function of a frame (one ephemeral GX context, checkpoint built once): every
    result of one run, as JSON dicts."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # GX draws a tqdm bar per validation on stderr: noise in task logs, the CLI and benchmarks
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("pipeline")
        .add_dataframe_asset("raw")
        .add_batch_definition_whole_dataframe("whole")
    )
    _refuse_unknown_expectations(suite_definition, suite_path)
    try:
        suite = context.suites.add(gx.ExpectationSuite(**suite_definition))
    except Exception as error:
        raise ComponentError(
            STEP,
            f"expectation suite {suite_path} is not a valid GX 1.x suite ({error})",
            "check each expectation's 'type' and 'kwargs' against the GX 1.x gallery",
        ) from error
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="raw", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=STEP, validation_definitions=[definition], result_format={"result_format": "SUMMARY"})
    )

    def run(frame: pd.DataFrame) -> list[dict[str, Any]]:
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        reports = [run.to_json_dict() for run in outcome.run_results.values()]  # type: ignore[no-untyped-call]
        return [r for report in reports for r in report["results"]]

    return run


def failures_of(results: list[dict[str, Any]], columns: set[str]) -> list[dict[str, Any]]:
    """The failed results, each named by `describe_failure`, missing columns first."""
    failures = [_failure(r, columns) for r in results if not r["success"]]
    failures.sort(key=lambda failure: "missing" not in failure.get("error", ""))
    return failures


def run_suite(
    frame: pd.DataFrame, suite_definition: dict[str, Any], suite_path: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the suite on `frame` in an ephemeral GX context: every result, and the failed ones
    (each named by `describe_failure`), missing columns first. validate and `mlops check-data` share it."""
    results = suite_runner(suite_definition, suite_path)(frame)
    return results, failures_of(results, set(frame.columns))


def _run_batched(
    dataset: str, suite_definition: dict[str, Any], suite_path: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, DatasetRecord] | None:
    """The suite over the raw data in bounded batches (components/steps/validate_batches.py); None
    where it runs on the whole data instead (a CSV file, a DVC pointer, an expectation it does not combine)."""
    from components import lineage
    from components.raw_data import raw_dataset
    from components.steps import validate_batches as validate_batches_module

    if dataset.endswith(".dvc") or not validate_batches_module.supported(suite_definition):
        return None
    with raw_dataset(STEP, dataset, "raw dataset") as scanned:
        if scanned is None:
            return None
        digest, data, _ = scanned
        run = suite_runner(suite_definition, suite_path)
        per_batch = validate_batches_module.per_batch_suite(suite_definition)
        batch_run = suite_runner(per_batch, suite_path) if per_batch is not None else None
        results, rows, dtypes = validate_batches_module.combined_results(data, run, batch_run)
        columns = set(data.schema.names)
    if not rows:
        raise ComponentError(
            STEP, f"raw dataset at {dataset} has no rows", "the upstream extract selected nothing: check its window"
        )
    record = lineage.describe(dataset, None, "raw", sha256=digest)
    record["rows"], record["schema"] = rows, dtypes
    return results, failures_of(results, columns), rows, record


def validate(dataset: str, suite_path: str, report_path: str, *, logical_date: str = "") -> dict[str, Any]:
    """Validate `dataset` (Parquet path or URI) against the suite; write the result JSON.

    A dataset URI dated with `{date}` is read for `logical_date` (components/dated_inputs.py).
    Raises ComponentError naming each failed expectation when the data does not pass; the
    report is still written so the failure can be inspected.
    """
    from components.dated_inputs import resolve
    from components.lineage import digest_word
    from components.raw_data import read_recorded

    dataset = resolve(dataset, logical_date, step=STEP)
    suite_definition = load_suite(suite_path)

    # a file, a folder or a hive dataset; the suite checks the columns as written (timestamp_column
    # None): materialize normalizes the timestamps, and both record the same digest (raw_data.py)
    batched = _run_batched(dataset, suite_definition, suite_path)
    if batched is None:
        frame, record = read_recorded(STEP, dataset, "raw dataset", "raw", timestamp_column=None, timezone=None)
        results, failures = run_suite(frame, suite_definition, suite_path)
        rows = len(frame)
        del frame
    else:
        results, failures, rows, record = batched
    summary = {
        "step": STEP,
        "success": not failures,
        "dataset": str(dataset),
        "logical_date": logical_date,
        "suite": suite_definition["name"],
        "rows": rows,
        "evaluated_expectations": len(results),
        "data_digest": digest_word(record),  # what later steps check, and the cache keys start from
        "failed_expectations": failures,
    }
    artifacts.write_json(report_path, summary)
    if failures:
        lines = "\n".join(f"  - {describe_failure(f)}" for f in failures)
        raise ComponentError(
            STEP,
            f"{len(failures)} of {len(results)} expectations failed on {dataset}:\n{lines}",
            "fix the upstream data (or, if the change is intended, update the suite "
            f"{suite_path}); the full result is in {report_path}",
        )
    return {k: v for k, v in summary.items() if k != "failed_expectations"}
