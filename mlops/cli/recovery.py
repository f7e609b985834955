"""`mlops verify`, `restore-cluster`: every registered version checked whole, and the registry database restored.

Issue 34. `mlops verify [<model>]` walks the registry (mlops/verify.py): each version's artifact against
its registered sha256, its serving copy, the datasets its lineage names where they are retained; per
version OK, MISSING or CORRUPT with the fix. Exit 0 when everything checked is whole, 1 when a version
is MISSING or CORRUPT, 2 an unknown model, 75 the registry or a store not answering. `--push` sends the
result to the namespace's Pushgateway (components/steps/notify.py), as the nightly CronWorkflow does.

`mlops restore-cluster` prints the CloudNativePG Cluster that restores the registry database from its
backups (pipelines/backups.py), to a point in time or to the latest archived WAL: docs/recovery.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

__all__ = ["register"]


def register(sub: Any, argv: list[str]) -> None:
    verify = sub.add_parser(
        "verify",
        help="check every registered version's artifact, serving copy and lineage data against its sha256s;"
        " exit 0 all whole, 1 MISSING/CORRUPT, 2 unknown model, 75 store unreachable",
    )
    verify.add_argument("model", nargs="?", help="one registered model (default: every model in the registry)")
    verify.add_argument("--json", action="store_true", help="the same, as one JSON object")
    verify.add_argument("--serving-root", metavar="URI", help="where promote published (default: MLOPS_SERVING_ROOT)")
    verify.add_argument(
        "--push", action="store_true", help="push the result to the namespace's Pushgateway (MLOPS_PUSHGATEWAY_URL)"
    )
    verify.set_defaults(handler=_verify)

    restore = sub.add_parser(
        "restore-cluster",
        help="print the CloudNativePG Cluster that restores the registry database from its backups (docs/recovery.md)",
    )
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="TIME", help="the point in time, ISO 8601 with its zone (2026-12-05T09:30Z)")
    target.add_argument("--latest", action="store_true", help="to the end of the archived WAL")
    restore.add_argument(
        "--name", default="mlops-postgres", help="the restored Cluster's name (default: the platform's)"
    )
    restore.add_argument(
        "--storage", default="50Gi", metavar="SIZE", help="its volume, as the overlay sizes the Cluster (default 50Gi)"
    )
    restore.add_argument(
        "--archive-as", default="", metavar="SERVER", help="its archive's new server name (default: <name>-<UTC now>)"
    )
    restore.set_defaults(handler=_restore_cluster, validate=_target_time)


def _verify(args: argparse.Namespace) -> int:
    from mlops.verify import FAILED, verify_registry

    reports = verify_registry(args.model, args.serving_root)
    failed = [report for report in reports if report.status in FAILED]
    if args.push:
        from components.steps.notify import deliver_verification

        at = dt.datetime.now(dt.UTC)
        deliver_verification([(r.model, r.version, r.status) for r in failed], at=at)
    if args.json:
        print(json.dumps({"versions": [report.as_json() for report in reports], "failed": len(failed)}, indent=2))
        return 1 if failed else 0
    for report in reports:
        print(f"{report.model} v{report.version}  {report.status}")
        for check in report.checks:
            print(f"  {check.what:<16} {check.status:<13} {check.detail}")
            if check.fix and check.status in FAILED:
                print(f"  {'':<16} fix: {check.fix}")
    counts = {status: sum(report.status == status for report in reports) for status in ("OK", *FAILED)}
    print(f"{len(reports)} versions checked: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return 1 if failed else 0


def _target_time(args: argparse.Namespace) -> dt.datetime | None:
    from components.errors import ComponentError

    if args.latest:
        return None
    try:
        when = dt.datetime.fromisoformat(args.to)
    except ValueError as error:
        raise ComponentError(
            "restore-cluster", f"--to {args.to!r} is not an ISO 8601 time", "give one with its zone: 2026-12-05T09:30Z"
        ) from error
    if when.tzinfo is None:
        raise ComponentError(
            "restore-cluster", f"--to {args.to!r} has no time zone", "add it (Z for UTC): 2026-12-05T09:30Z"
        )
    return when


def _restore_cluster(args: argparse.Namespace) -> int:
    import yaml

    from pipelines.backups import recovery_cluster

    try:
        when = _target_time(args)
        cluster = recovery_cluster(when, name=args.name, archive_as=args.archive_as, storage=args.storage)
    except ValueError as error:
        from components.errors import ComponentError

        raise ComponentError("restore-cluster", str(error), "pick another --archive-as (or leave it out)") from error
    print(yaml.safe_dump(cluster, sort_keys=False), end="")
    return 0
