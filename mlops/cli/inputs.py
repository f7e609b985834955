"""`mlops check-data`: a raw file checked against a pipeline's suite and data contract before a run.

The same checks the run makes, all at once: validate's expectation suite (components/steps/validate.py's
run_suite) and the data contract materialize enforces (components/data_contract.py, docs/data-contract.md).
It reads FILE as the run does (components/raw_data.py: a Parquet file, folder or hive dataset, local
or s3://): the suite sees the columns as written, the contract the timestamps as materialize normalizes
them. Exit 0 when clean, 2 (permanent) when anything is violated, each violation on its own line.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["FEATURE_RULES", "STEP", "check_data", "register"]

STEP = "check-data"

FEATURE_RULES = frozenset({"missing-feature", "unfilled-nulls", "unknown-fill"})
"""The contract's rules on feature columns: where a team's features step computes them, they apply to
that step's output (materialize checks it in the run), not to the raw file."""


def register(sub: Any, argv: list[str]) -> None:
    check = sub.add_parser(
        "check-data",
        help="check a raw file against a pipeline's expectation suite and data contract, every violation at once",
    )
    check.add_argument("pipeline", help="a registered pipeline name or a package folder")
    check.add_argument("file", help="the raw data: a Parquet file, folder or dataset, local or s3://")
    check.set_defaults(handler=_check_data)


def check_data(pipeline: str, uri: str) -> tuple[list[str], list[str]]:
    """(violations, notes) of `uri` against `pipeline`'s suite and contract."""
    from components.data_contract import contract_violations
    from components.errors import ComponentError
    from components.raw_data import load_raw, utc_microseconds
    from components.steps.materialize import repo_definitions, service_features
    from components.steps.validate import describe_failure, load_suite, run_suite
    from pipelines.local import declaration

    declared = declaration(pipeline)
    cfg = declared.config()
    settings = cfg.materialize
    frame = load_raw(uri, timestamp_column=None, timezone=None, step=STEP, what="raw data").frame  # as validate
    suite_path = str(declared.folder / cfg.validate_.suite)
    _, failures = run_suite(frame, load_suite(suite_path), suite_path)
    found = [f"suite: {describe_failure(failure)}" for failure in failures]
    stamp = settings.timestamp_column
    if stamp in frame.columns:  # then as materialize reads it: any unit, UTC, naive only with a timezone
        try:
            frame[stamp] = utc_microseconds(
                frame[stamp], column=stamp, timezone=settings.timezone, step=STEP, csv=uri.endswith(".csv")
            )
        except ComponentError as refused:
            found.append(f"contract: {refused.problem}; fix: {refused.fix}")
    definitions = repo_definitions(declared.folder / settings.feature_repo, uri)
    violations = contract_violations(frame, settings, service_features(definitions, settings.feature_service))
    notes: list[str] = []
    materialize = next(step for step in declared.spec.steps if step.name == "materialize")
    if "raw_data" in materialize.inputs:  # a team features step writes what materialize reads
        maker = materialize.inputs["raw_data"].partition(".")[0]
        violations = [v for v in violations if v.rule not in FEATURE_RULES]
        notes.append(f"feature columns not checked: step '{maker}' computes them; materialize checks its output")
    found += [f"contract: {violation}" for violation in violations]
    return found, notes


def _check_data(args: argparse.Namespace) -> int:
    from components.errors import PERMANENT_EXIT_CODE

    found, notes = check_data(args.pipeline, args.file)
    for line in [*found, *notes]:
        print(line)
    plural = "s" if len(found) != 1 else ""
    print(f"{args.file}: {len(found)} violation{plural} of {args.pipeline}'s suite and contract")
    return PERMANENT_EXIT_CODE if found else 0
