"""`mlops`: the command line. Thin by design: parsing and printing here, the work in pipelines/ and components/.

One module per command group, each owning its parsers and handlers (kfp/cli's layout); the table is
generated from the code by `python -m mlops.docs_index`: cli

    run.py         run, step, task, materialize
                   a pipeline or one of its steps, here or in a task's container
    cluster.py     compile, golden, submit, status, schedule
                   a pipeline rendered for Argo or KFP, sent to its server
    backfill.py    backfill
                   a pipeline run once per day of a date range, a few at a time, on Argo or KFP
    dev.py         dev, tenant, isolation-check, buckets
                   the services on loopback, their tenants, the buckets
    serving.py     serve, score, promote, history
                   a version on the local Triton, and its canary on KServe
    canaries.py    canary-analysis
                   each live canary of a namespace judged once its window has passed (the hourly sweep)
    monitoring.py  drift, skew-check
                   data and features now against what the champion was trained on
    lineage.py     lineage, reproduce
                   a registered (or serving) model back to its data, features, code and image
    audit.py       audit, decisions
                   one logged decision explained and re-scored, and a model's decisions over days
    outcomes.py    outcomes
                   late labels joined to the decision log (ingest), and each version's realized metrics
    tune.py        tune, tune-trial
                   a hyperparameter search (Optuna here, Katib there), and one Katib trial
    checks.py      lint, doctor
                   the manifests and the live configuration, checked against the platform's known failures
    inputs.py      check-data
                   a raw file checked against a pipeline's suite and data contract before a run
    scaffold.py    new, data
                   a new pipeline folder from a reference one, and a pipeline's synthetic dataset
    recovery.py    verify, restore-cluster
                   every registered version checked whole, and the registry database restored

Building the parser imports these modules only (each imports its libraries inside its handlers),
and `mlops step`'s flags, derived from the components' signatures, are built only for `mlops step`.
Nothing here is imported by pipelines/ or components/.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import components  # noqa: F401  (applies the air-gapped defaults before anything else loads)

__all__ = ["GROUPS", "build_parser", "main"]

GROUPS = (
    "run",
    "cluster",
    "backfill",
    "dev",
    "serving",
    "canaries",
    "monitoring",
    "lineage",
    "audit",
    "outcomes",
    "tune",
    "checks",
    "inputs",
    "scaffold",
    "recovery",
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    words = list(sys.argv[1:] if argv is None else argv)
    for group in GROUPS:
        importlib.import_module(f"mlops.cli.{group}").register(sub, words)
    return parser


def main(argv: list[str] | None = None) -> int:
    from components.errors import classify

    args = build_parser(argv).parse_args(argv)
    try:
        code: int = args.handler(args)
    except Exception as error:
        failure = classify(error, getattr(args, "command", None) or "mlops")
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code
    return code
