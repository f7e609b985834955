"""`mlops`: the command line. Thin by design: parsing and printing here, the work in pipelines/ and components/.

One module per command group, each owning its parsers and handlers (kfp/cli's layout):

    run.py       run, step, task, materialize      a pipeline or one step, here or in a task's container
    cluster.py   compile, submit, status, schedule rendering for Argo/KFP, the Argo server
    dev.py       dev, tenant, isolation-check, buckets  the loopback services, tenants, buckets
    serving.py   serve, promote, history           the local Triton, the canary lifecycle on KServe
    monitoring.py drift                            the data a file holds against the champion's training set
    lineage.py   lineage, reproduce                what a model version was made from
    tune.py      tune, tune-trial                  a hyperparameter search: Optuna here, Katib there
    checks.py    lint, doctor                      manifests and live configuration
    scaffold.py  new, data                         a new pipeline folder, synthetic data

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

GROUPS = ("run", "cluster", "dev", "serving", "monitoring", "lineage", "tune", "checks", "scaffold")


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
