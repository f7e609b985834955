"""feast_refresh: the scheduled refresh of one Feast project's online store, as each tenant's CronJob runs it.

    python -m components.steps.feast_refresh --project fraud

Between pipeline runs, each online feature view is materialized from its watermark (the end of
the last interval written, by the pipeline's materialize step or an earlier refresh) up to now,
so a row its offline source gained since reaches the online store without a run. The stores are
the namespace's, resolved exactly as a pipeline step resolves them (components/platform/services.py: the
`mlops-platform` ConfigMap's registry URL, Redis and offline store, the passwords from the
tenant's Secrets), so the CronJob (pipelines/tenancy.py: feast_cronjob) never names an endpoint
of its own. A project whose registry holds no online view yet (the tenant's pipeline has not run)
is nothing to do, not a failure.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from components.errors import classify

STEP = "feast-refresh"


def refresh_online(project: str, store_dir: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Materialize every online view of `project` from its watermark to `now`; report each view's interval."""
    from components.steps.materialize import open_store

    end = now or datetime.now(UTC)
    store = open_store(project, store_dir)
    views = [view for view in store.list_feature_views() if view.online]
    refreshed = [
        {"view": view.name, "from": view.most_recent_end_time.isoformat() if view.most_recent_end_time else None}
        for view in views
    ]
    if views:
        store.materialize_incremental(end_date=end, feature_views=[view.name for view in views])
    return {"step": STEP, "project": project, "to": end.isoformat(), "refreshed": refreshed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.steps.feast_refresh", description=__doc__)
    parser.add_argument("--project", required=True, help="the Feast project (a pipeline's materialize.project)")
    parser.add_argument("--store-dir", help="a scratch folder for feature_store.yaml (default: $MLOPS_HOME/feast)")
    args = parser.parse_args(argv)
    try:
        summary = refresh_online(args.project, args.store_dir)
    except Exception as error:
        known = classify(error, STEP)  # permanent (exit 2) or transient (75); anything else, its traceback (1)
        if known is None:
            raise
        print(known, file=sys.stderr)
        return known.exit_code
    if not summary["refreshed"]:
        print(
            f"project {args.project}: no online feature view registered yet (its pipeline has not run); nothing to do"
        )
    for view in summary["refreshed"]:
        print(f"refreshed {view['view']} from {view['from'] or 'its source start'} to {summary['to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
