"""`mlops audit`, `decisions`: one logged decision explained and re-scored, and a model's decisions over days.

Issue 32 item 2. Both read the decision log (components/platform/decisions.py: where it is, how it is
read) and the registry alone, never the serving path:

- `mlops audit <request id>/<row>`: which version decided (the sha256 logged, against the version's
  registered artifact_sha256), who put it into service, when and why (the serving history), what it
  was made from (`mlops lineage`'s chain: data digests, feature service, suite, commit, image), the
  request, the features used and the score; then the logged feature vector is scored again with the
  registered artifact. Exit 0 REPRODUCED, 1 DIFFERENT (or the logged sha256 is not the registered
  one), 2 an unknown or malformed id, 75 the log's store or the registry not answering. The log is
  where the settings say (components/platform/decisions.py decision_log_root); on a platform profile
  that names no tenant (`eval "$(mlops dev env)"`), where `mlops serve` logs there: the id names no
  namespace, so the log of each installed pipeline's serving namespace (promote.namespace) is searched,
  and an id found in none, or in more than one, is refused (2) naming the logs and the fix.
- `mlops decisions <model> --since D --until D`: the decisions, newest last, and per version and
  serving role their count, positive rate, mean score, unknown-entity share, first and last time.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

__all__ = ["register"]

STEP = "audit"


def register(sub: Any, argv: list[str]) -> None:
    audit = sub.add_parser(
        "audit",
        help="explain one logged decision (version, promotion, lineage, features, score) and re-score it;"
        " exit 0 REPRODUCED, 1 DIFFERENT, 2 unknown id, 75 store unreachable",
    )
    audit.add_argument("decision_id", metavar="DECISION_ID", help="<request id>/<row>, as the response and the log say")
    audit.add_argument("--json", action="store_true", help="the same, as one JSON object")
    audit.add_argument(
        "--log",
        metavar="URI",
        help="the log's root (default: $MLOPS_HOME/decisions/, or the tenant's; on a platform profile that names"
        " no tenant, the log of each installed pipeline's serving namespace is searched)",
    )
    audit.set_defaults(handler=_audit)

    listing = sub.add_parser("decisions", help="a model's logged decisions over days, with a summary per version")
    listing.add_argument("model")
    listing.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="the first day (UTC)")
    listing.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="the last day (UTC, included)")
    listing.add_argument("--version", type=int, help="this version's decisions only")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="decisions listed (default 50; 0: all)")
    listing.add_argument("--json", action="store_true", help="the same, as one JSON object")
    listing.add_argument(
        "--log", metavar="URI", help="the log's root (default: $MLOPS_HOME/decisions/, or the tenant's)"
    )
    listing.set_defaults(handler=_decisions)


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _plain(value: Any) -> Any:
    """A log value fit for JSON: times as ISO text, NaN as null."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _registry_side(model: str, version: int) -> tuple[dict[str, Any], list[dict[str, Any]], Any, bytes]:
    """From the registry: the version's lineage chain, its serving events, its registration and bytes."""
    from components.platform import model_registry, services
    from mlops.cli.lineage import read_lineage

    services.check_tracking_server(STEP, model_registry.tracking_uri())  # down: transient, exit 75
    chain = read_lineage(model, version=version)
    mlflow = model_registry.client()
    events = [
        {"action": e.action, "to_version": e.to_version, "from_version": e.from_version, "at": e.at, "who": e.who,
         "reason": e.reason, "traffic_percent": e.traffic_percent, "namespace": e.namespace, "applied": e.applied}
        for e in model_registry.history(mlflow, model)
        if version in (e.to_version, e.from_version)
    ]  # fmt: skip
    registration, model_bytes = model_registry.load_registration(mlflow, model, version)
    return chain, events, registration, model_bytes


def _after(at: str, decided_at: Any) -> bool:
    """Whether a serving event's time (ISO text, UTC) is later than the decision's; unreadable: no."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(at) > decided_at
    except (TypeError, ValueError):
        return False


def _serving_namespaces() -> list[str]:
    """The namespaces the installed pipelines serve in (promote.namespace): where `mlops serve` logs
    their decisions on a platform profile that names no tenant."""
    from pipelines.local import available_pipelines, declaration

    return [declaration(name).config().promote.namespace for name in available_pipelines()]


def locate(decision: str, log: str | None = None) -> tuple[str, dict[str, Any]]:
    """The log that holds `decision` and its record: the one log the settings name, else the one of the
    installed pipelines' serving namespaces' logs that holds it; none, or more than one, is refused."""
    from components.errors import ComponentError
    from components.platform import decisions
    from components.serving.decision_record import BUCKET

    roots = decisions.decision_log_roots(log, serving_namespaces=_serving_namespaces)
    if len(roots) == 1:
        record = decisions.find(roots[0], decision)
        if record is None:
            raise ComponentError(
                STEP,
                f"no decision {decision!r} in the decision log at {roots[0]}",
                "check the id (`mlops decisions <model> --since D --until D` lists them), or name another log"
                " with --log",
            )
        return roots[0], record
    found: dict[str, dict[str, Any]] = {}
    for root in roots:
        try:
            record = decisions.find(root, decision)
        except decisions.NoDecisionLog:  # that namespace has logged nothing
            continue
        if record is not None:
            found[root] = record
    if len(found) == 1:
        [(root, record)] = found.items()
        return root, record
    if not found:
        raise ComponentError(
            STEP,
            f"no decision {decision!r} in the decision logs of the installed pipelines' serving namespaces"
            f" ({', '.join(roots)}), and this profile names no tenant",
            "check the id (`mlops decisions <model> --since D --until D` lists them), or name its log:"
            f" --log s3://{BUCKET}/<namespace>/, or set {decisions.NAMESPACE_VARIABLE}",
        )
    raise ComponentError(
        STEP,
        f"decision {decision!r} is in more than one decision log: {', '.join(found)}; the id names no namespace",
        f"name the one you mean: --log {next(iter(found))}, or set {decisions.NAMESPACE_VARIABLE} to its namespace",
    )


def explain(decision: str, log: str | None = None) -> dict[str, Any]:
    """Everything `mlops audit` says of one decision, as one object."""
    from components.errors import ComponentError
    from components.platform import decisions

    root, record = locate(decision, log)
    model, logged_version = record["model_name"], record["model_version"]
    if not str(logged_version).isdigit():
        raise ComponentError(STEP, f"{decision} names no registered version ({logged_version!r})",
                             "the transformer served a model it could not name: see its log")  # fmt: skip
    version = int(logged_version)
    chain, events, registration, model_bytes = _registry_side(model, version)
    result = decisions.rescore(record, registration, model_bytes)
    for event in events:
        event["after_decision"] = _after(event["at"], record["decided_at"])
    registered = chain["artifact_sha256"]
    same_bytes = registered == record["model_sha256"]
    verdict = "REPRODUCED" if result.reproduced else "DIFFERENT"
    return {
        "decision_id": record["decision_id"],
        "log": root,
        "verdict": verdict,
        "sha256_matches": same_bytes,
        "decision": {key: _plain(value) for key, value in record.items()},
        "model": {
            "name": model,
            "version": version,
            "sha256_logged": record["model_sha256"],
            "sha256_registered": registered,
            "aliases": chain["aliases"],
            "run_id": chain["run_id"],
        },
        "serving_history": events,
        "lineage": {
            key: chain[key]
            for key in (
                "datasets",
                "feature_service",
                "point_in_time",
                "logical_date",
                "suite",
                "config",
                "git_commit",
                "image",
            )
        },
        "features": [  # a list: the model's order survives JSON's sorted keys
            {"name": name, "value": _plain(value)}
            for name, value in zip(record["feature_names"], record["feature_values"], strict=True)
        ],
        "rescore": {
            "kind": result.kind,
            "logged": _plain(result.logged),
            "rescored": result.rescored,
            "class_scores": result.class_scores,
            "difference": _plain(result.difference),
            "tolerance": result.tolerance,
            "reproduced": result.reproduced,
        },
    }


def _print_lineage(lineage: dict[str, Any]) -> None:
    for dataset in lineage["datasets"]:
        print(f"  data       {dataset['context']:<9} {dataset['source']}  {dataset['digest_kind']} {dataset['digest']}")
    if lineage["logical_date"]:
        print(f"  date       {lineage['logical_date']} (the training run's logical date)")
    features, suite = lineage["feature_service"] or {}, lineage["suite"] or {}
    print(f"  features   {features.get('name', '-')} sha256 {features.get('sha256', '-')}")
    print(f"  suite      {suite.get('name', '-')} sha256 {suite.get('sha256', '-')}")
    print(f"  commit     {lineage['git_commit'] or '- (not trained from a git checkout)'}")
    image = lineage["image"] or {}
    print(f"  image      {image.get('reference', '- (not trained in a container)')}"
          f"{' digest ' + image['digest'] if 'digest' in image else ''}")  # fmt: skip


def _print_audit(found: dict[str, Any]) -> None:
    record, model, rescored = found["decision"], found["model"], found["rescore"]
    print(f"decision {found['decision_id']} at {record['decided_at']} in {record['namespace']} ({found['log']})")
    aliases = f", alias {', '.join(model['aliases'])}" if model["aliases"] else ""
    print(f"  model      {model['name']} v{model['version']} as {record['serving_role']}"
          f" (revision {record['revision']}){aliases}")  # fmt: skip
    print(f"  sha256     {model['sha256_logged']} (logged)")
    if found["sha256_matches"]:
        print("             the registered artifact_sha256 of this version: the same bytes")
    else:
        print(f"  SHA256 MISMATCH: the bytes that decided are not the bytes registered as v{model['version']}"
              f" (registered artifact_sha256 {model['sha256_registered'] or '- (none)'})")  # fmt: skip
    for event in found["serving_history"] or [{}]:
        if not event:
            print("  serving    no canary or promotion recorded for this version")
            continue
        later = " (after this decision)" if event["after_decision"] else ""
        came = f" (from v{event['from_version']})" if event["from_version"] is not None else ""
        print(f"  serving    {event['action']} v{event['to_version']}{came} to {event['traffic_percent']}% at"
              f" {event['at']} by {event['who']}: {event['reason'] or '(no reason)'}{later}")  # fmt: skip
    _print_lineage(found["lineage"])
    print(f"  request    {record['request']}")
    state = "UNKNOWN: scored on the defaults" if record["unknown_entity"] else "known to the online store"
    print(f"  entity     {record['entity_column']}={record['entity_id']} ({state})")
    for index, feature in enumerate(found["features"]):
        print(f"  {'features' if index == 0 else '':<10} {feature['name']} = {feature['value']}")
    threshold = record["threshold"]
    decided = f"threshold {threshold}, decision {record['decision']}" if threshold is not None else (
        f"decision {record['decision']}" if record["decision"] is not None else "no threshold (a value)")  # fmt: skip
    print(f"  score      {record['score']} ({decided})")
    print(
        f"  rescored   {rescored['rescored']} by the registered artifact ({rescored['kind']}), |difference|"
        f" {rescored['difference']} (tolerance {rescored['tolerance']}: the served model scores in FP32)"
    )
    if rescored["reproduced"]:
        print(f"REPRODUCED: v{model['version']}'s registered artifact gives the logged score on the logged features")
    else:
        print(f"DIFFERENT: logged score {rescored['logged']}, re-scored {rescored['rescored']},"
              f" difference {rescored['difference']}")  # fmt: skip
    if not found["sha256_matches"]:
        print(f"SHA256 MISMATCH: logged {model['sha256_logged'][:12]}, registered {model['sha256_registered'][:12]}:"
              f" the registry cannot vouch for the bytes that made this decision")  # fmt: skip


def _audit(args: argparse.Namespace) -> int:
    found = explain(args.decision_id, args.log)
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True, default=str))
    else:
        _print_audit(found)
    return 0 if found["rescore"]["reproduced"] and found["sha256_matches"] else 1


def _model_log_root(model: str, log: str | None) -> str:
    """The log `mlops decisions <model>` reads: as every reader finds it, else (a platform profile that
    names no tenant) the namespace the model's pipeline serves in, from the registry's `pipeline` tag,
    where `mlops serve` logs; the original refusal if the registry cannot say."""
    from components.errors import ComponentError
    from components.platform import decisions, model_registry
    from mlops import rollout

    try:
        return decisions.decision_log_root(log)
    except ComponentError as unknown:
        try:
            settings = rollout.settings_for(model_registry.client(), model, None, None, None).promote
        except ComponentError:
            raise unknown from None
        return decisions.decision_log_root(log, serving_namespace=settings.namespace)


def _decisions(args: argparse.Namespace) -> int:
    from components.platform import decisions

    root = _model_log_root(args.model, args.log)
    version = None if args.version is None else str(args.version)
    table = decisions.between(root, args.model, args.since, args.until, version=version)
    columns = ["decision_id", "decided_at", "model_version", "serving_role", "score", "decision", "unknown_entity"]
    rows = [{key: _plain(value) for key, value in row.items()} for row in table.select(columns).to_pylist()]
    shown = rows if args.limit <= 0 else rows[-args.limit :]
    per_version = [{key: _plain(value) for key, value in row.items()}
                   for row in decisions.summary(table).to_dict(orient="records")]  # fmt: skip
    if args.json:
        print(json.dumps({"model": args.model, "since": args.since, "until": args.until, "version": args.version,
                          "log": root, "total": len(rows), "decisions": shown, "summary": per_version},
                         indent=2, sort_keys=True, default=str))  # fmt: skip
        return 0
    chosen = f" v{args.version}" if args.version is not None else ""
    print(f"{args.model}{chosen}: {len(rows)} decisions from {args.since} to {args.until} ({root})")
    if len(shown) < len(rows):
        print(f"  (the last {len(shown)}; --limit 0 lists all)")
    for row in shown:
        flag = " UNKNOWN-ENTITY" if row["unknown_entity"] else ""
        print(f"  {row['decision_id']:<40} {row['decided_at']}  v{row['model_version']} {row['serving_role']:<8}"
              f" score {_number(row['score'], '.6g')} decision {row['decision']}{flag}")  # fmt: skip
    for item in per_version:
        print(f"  v{item['model_version']} {item['serving_role']:<8} {item['decisions']} decisions, positive rate"
              f" {_number(item['positive_rate'], '.3f')}, mean score {_number(item['mean_score'], '.4f')},"
              f" unknown entities {item['unknown_share']:.1%},"
              f" {item['first']} .. {item['last']}")  # fmt: skip
    return 0
