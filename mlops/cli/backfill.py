"""`mlops backfill`: a pipeline run once per day of a date range, a few at a time, on Argo or KFP.

Each date is one run with that date as its logical date (`mlops submit --date`), so a dated
cluster.raw_data reads that day's extract; mlops/backfill.py schedules the runs and classifies
each finished one (ran, cached, failed). This module builds the runs for each engine, with the
server flags `mlops submit` takes, and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError

if TYPE_CHECKING:  # building the parser imports no more than the flags need
    from components.config import PipelineConfig
    from mlops.backfill import Outcome
    from pipelines.declaration import PipelineDeclaration

__all__ = ["register", "validate"]


def register(sub: Any, argv: list[str]) -> None:
    from mlops.cli.cluster import add_server_flags

    backfill = sub.add_parser(
        "backfill",
        help="run a pipeline once per date of a range (each run's logical date), N at a time, and report each date",
    )
    backfill.add_argument("pipeline")
    backfill.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="the first date")
    backfill.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="the last date (included)")
    backfill.add_argument("--parallel", type=int, default=1, metavar="N", help="runs in flight at once (default 1)")
    backfill.add_argument("--poll-seconds", type=float, default=5.0)
    backfill.add_argument("--dry-run", action="store_true", help="print the dates and each run's body, send nothing")
    add_server_flags(backfill)
    backfill.set_defaults(handler=_backfill, validate=validate)


def validate(args: argparse.Namespace) -> list[dt.date]:
    """The dates, refused (exit 2) when the range runs backwards or is too long, or --parallel is below 1."""
    from mlops.backfill import check_parallel, dates_between

    check_parallel(args.parallel)
    return dates_between(args.start, args.end)


def _backfill(args: argparse.Namespace) -> int:
    from mlops.backfill import run_all
    from mlops.cli.cluster import argo_connection
    from pipelines.local import declaration, git_commit

    days = validate(args)
    pipeline = declaration(args.pipeline)
    cfg = pipeline.config()
    sha = git_commit()
    if args.engine == "kfp":
        return _kfp(args, pipeline, cfg, sha, days)
    if args.dry_run:
        connection = _if_configured(lambda: argo_connection(args, cfg.cluster.namespace))
        namespace = connection.namespace if connection else args.namespace or cfg.cluster.namespace
        engine = _Argo(connection, pipeline, cfg, sha)
        requests = [
            {"method": "POST", "path": f"/api/v1/workflows/{namespace}", "body": {"workflow": engine.body(day)}}
            for day in days
        ]
        return _dry_run(connection, days, requests)
    engine = _Argo(argo_connection(args, cfg.cluster.namespace), pipeline, cfg, sha)
    return _report(run_all(engine, days, parallel=args.parallel, poll_seconds=args.poll_seconds))


def _if_configured(connect: Callable[[], Any]) -> Any:
    """The connection, or None when none is configured: a dry run needs no server."""
    with contextlib.suppress(ComponentError):
        return connect()
    return None


def _dry_run(connection: Any, days: list[dt.date], requests: list[dict[str, Any]]) -> int:
    plan = {
        "connection": connection.redacted() if connection else None,
        "dates": [str(day) for day in days],
        "requests": [{"date": str(day), **request} for day, request in zip(days, requests, strict=True)],
    }
    print(json.dumps(plan, indent=2))
    return 0


def _report(outcomes: list[Outcome]) -> int:
    from mlops.backfill import exit_code, summary, table

    print(f"\n{table(outcomes)}\n\n{summary(outcomes)}")
    return exit_code(outcomes)


class _Argo:
    """A backfill's runs as Argo Workflows of the pipeline's WorkflowTemplate, labelled with their date."""

    def __init__(self, connection: Any, pipeline: PipelineDeclaration, cfg: PipelineConfig, sha: str) -> None:
        self.connection, self.pipeline, self.cfg, self.sha = connection, pipeline, cfg, sha

    def body(self, day: dt.date) -> dict[str, Any]:
        from pipelines.argo import workflow

        parameters = {"logical-date": day.isoformat()}
        run: dict[str, Any] = workflow(self.pipeline, self.cfg, git_sha=self.sha, parameters=parameters).to_dict()
        return run

    def submit(self, day: dt.date) -> str:
        from mlops import argo_client

        return argo_client.submit(self.connection, self.body(day))

    def poll(self, run: str) -> dict[str, Any] | None:
        from mlops import argo_client

        document = argo_client.get_workflow(self.connection, run)
        return document if document.get("status", {}).get("phase") in argo_client.TERMINAL else None

    def classify(self, day: dt.date, run: str, document: dict[str, Any]) -> Outcome:
        from mlops.backfill import argo_outcome

        return argo_outcome(day, run, document)

    def stops(self, error: ComponentError) -> bool:
        from hera.exceptions import Unauthorized

        return isinstance(error.__cause__, Unauthorized)


class _Kfp:
    """A backfill's runs as KFP runs of the pipeline's uploaded version, with logical_date set."""

    def __init__(self, connection: Any, kfp: Any, upload: Any, pipeline: str, sha: str) -> None:
        self.connection, self.kfp, self.upload, self.pipeline, self.sha = connection, kfp, upload, pipeline, sha

    def parameters(self, day: dt.date) -> dict[str, Any]:
        from mlops import kfp_client

        return kfp_client.run_parameters({"logical-date": day.isoformat()}, git_sha=self.sha)

    def name(self, day: dt.date) -> str:
        return f"{self.pipeline}-{day.isoformat()}"

    def submit(self, day: dt.date) -> str:
        from mlops import kfp_client

        created = kfp_client.create_run(self.kfp, self.connection, self.upload, self.name(day), self.parameters(day))
        return str(created["run_id"])

    def poll(self, run: str) -> dict[str, Any] | None:
        from mlops import kfp_client

        document = kfp_client.get_run(self.connection, run, self.kfp)
        return document if document.get("state") in kfp_client.TERMINAL else None

    def classify(self, day: dt.date, run: str, document: dict[str, Any]) -> Outcome:
        from mlops.backfill import kfp_outcome

        return kfp_outcome(day, run, document)

    def stops(self, error: ComponentError) -> bool:
        return getattr(error.__cause__, "status", None) == 401


def _kfp(
    args: argparse.Namespace, pipeline: PipelineDeclaration, cfg: PipelineConfig, sha: str, days: list[dt.date]
) -> int:
    from mlops import kfp_client
    from mlops.backfill import run_all
    from mlops.cli.kfp_engine import compiled, kfp_connection

    with compiled(pipeline, cfg, sha) as upload:
        if args.dry_run:
            connection = _if_configured(lambda: kfp_connection(args, cfg.cluster.namespace))
            engine = _Kfp(connection, None, upload, pipeline.name, sha)
            requests = [
                {"run": "POST /apis/v2beta1/runs", "display_name": engine.name(day), "pipeline_version": upload.version,
                 "runtime_config": {"parameters": engine.parameters(day)}}
                for day in days
            ]  # fmt: skip
            return _dry_run(connection, days, requests)
        connection = kfp_connection(args, cfg.cluster.namespace)
        engine = _Kfp(connection, kfp_client.client(connection), upload, pipeline.name, sha)
        outcomes = run_all(engine, days, parallel=args.parallel, poll_seconds=args.poll_seconds)
    return _report(outcomes)
