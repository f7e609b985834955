"""`mlops lineage`, `reproduce`: a registered (or serving) model back to its data, features, code and image.

`mlops reproduce` trains the version again from that lineage and says whether it came out the same.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["read_lineage", "register"]


def register(sub: Any, argv: list[str]) -> None:
    lineage = sub.add_parser("lineage", help="what a model version was made from: data, features, suite, config, code")
    lineage.add_argument("model")
    which = lineage.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--alias", help="e.g. champion (default: challenger, the latest that passed its gate)")
    lineage.add_argument("--json", action="store_true", help="the same, machine-readable")
    lineage.set_defaults(handler=_lineage)

    reproduce = sub.add_parser(
        "reproduce", help="train a version again from its recorded lineage; exit 0 REPRODUCED, 1 DIFFERENT"
    )
    reproduce.add_argument("model")
    chosen = reproduce.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--version", type=int)
    chosen.add_argument("--alias")
    reproduce.set_defaults(handler=_reproduce)


def read_lineage(model: str, *, version: int | None = None, alias: str | None = None) -> dict[str, Any]:
    """The chain of one version, from the registry alone (embedded store or tracking server)."""
    from components.errors import ComponentError
    from components.platform import model_registry
    from components.platform.model_registry import HASH_TAG

    mlflow = model_registry.client()
    number = model_registry.resolve_version(mlflow, model, version=version, alias=alias)
    record = mlflow.get_model_version(model, str(number))
    run_id = model_registry.run_id_of(record)
    run = mlflow.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            document = json.loads(Path(mlflow.download_artifacts(run_id, "lineage/lineage.json", tmp)).read_text())
        except Exception as error:
            raise ComponentError(
                "lineage",
                f"{model} v{number} (run {run_id}) has no lineage record",
                "it was registered before lineage was recorded: retrain it with `mlops run` or `mlops submit`",
            ) from error
    datasets = []
    for entry in run.inputs.dataset_inputs if run.inputs else []:
        profile = json.loads(entry.dataset.profile or "{}")
        context = next((t.value for t in entry.tags if t.key == "mlflow.data.context"), "")
        source = json.loads(entry.dataset.source).get("uri", entry.dataset.source)
        datasets.append(
            {
                "name": entry.dataset.name,
                "context": context,
                "source": source,
                "digest": profile.get("digest", entry.dataset.digest),
                "digest_kind": profile.get("digest_kind", ""),
                "rows": profile.get("num_rows"),
            }
        )
    recorded = {d["name"]: d for d in document.get("datasets", [])}
    for dataset in datasets:
        extra = recorded.get(dataset["name"], {})
        dataset |= {key: extra[key] for key in ("lakefs", "dvc") if key in extra}
    aliases = sorted(name for name, number_ in model_registry.aliases(mlflow, model).items() if number_ == number)
    serving = [
        {
            "action": e.action,
            "traffic_percent": e.traffic_percent,
            "at": e.at,
            "who": e.who,
            "namespace": e.namespace,
            "applied": e.applied,
        }
        for e in model_registry.history(mlflow, model)
        if e.to_version == number
    ]
    return {
        "model": model,
        "version": number,
        "aliases": aliases,
        "serving": serving,
        "artifact_sha256": record.tags.get(HASH_TAG, ""),
        "run_id": record.run_id,
        "experiment_id": run.info.experiment_id,
        "datasets": datasets,
        "feature_service": {k: v for k, v in (document.get("feature_service") or {}).items() if k != "definition"},
        "point_in_time": document.get("point_in_time"),
        "logical_date": document.get("logical_date") or "",
        "suite": document.get("suite"),
        "config": document.get("config"),
        "git_commit": document.get("git_commit", ""),
        "image": document.get("image") or {},
        "packages": document.get("packages") or {},
    }


def _lineage(args: argparse.Namespace) -> int:
    chain = read_lineage(args.model, version=args.version, alias=args.alias)
    if args.json:
        print(json.dumps(chain, indent=2, sort_keys=True))
        return 0
    aliases = f" (alias {', '.join(chain['aliases'])})" if chain["aliases"] else ""
    print(f"{chain['model']} v{chain['version']}{aliases}")
    if chain["serving"]:
        for event in chain["serving"]:
            print(
                f"  serving    {event['action']} to {event['traffic_percent']}% at {event['at']} by {event['who']}"
                f"{' in ' + event['namespace'] if event['namespace'] else ''} ({event['applied'] or '-'})"
            )
    else:
        print("  serving    never rolled out (no canary or promotion recorded)")
    print(
        f"  artifact   sha256 {chain['artifact_sha256']}, run {chain['run_id']} (experiment {chain['experiment_id']})"
    )
    for dataset in chain["datasets"]:
        rows = f", {dataset['rows']:,} rows" if dataset.get("rows") is not None else ""
        pinned = ""
        if "lakefs" in dataset:
            pinned = f", lakeFS {dataset['lakefs']['repository']}@{dataset['lakefs']['commit'][:12]}"
        if "dvc" in dataset:
            pinned = f", DVC pointer to {dataset['dvc']['path']}"
        print(
            f"  data       {dataset['context']:<9} {dataset['source']}  {dataset['digest_kind']} "
            f"{dataset['digest']}{rows}{pinned}"
        )
    if chain["logical_date"]:  # a dated run: the source above is the URI its date resolved to
        print(f"  date       {chain['logical_date']} (the run's logical date)")
    features, pit = chain["feature_service"], chain["point_in_time"] or {}
    print(
        f"  features   {features.get('name')} sha256 {features.get('sha256')}; point-in-time on "
        f"{pit.get('entity_column')} at {pit.get('timestamp_column')}, holdout {pit.get('holdout_fraction')}"
    )
    suite = chain["suite"] or {}
    print(f"  suite      {suite.get('name', '-')} sha256 {suite.get('sha256', '-')}")
    print(
        f"  config     sha256 {(chain['config'] or {}).get('sha256', '-')} (the file: run artifact lineage/config.json)"
    )
    print(f"  commit     {chain['git_commit'] or '- (not run from a git checkout)'}")
    image = chain["image"]
    where = image.get("reference", "- (not in a container)") + (
        f" digest {image['digest']}" if "digest" in image else ""
    )
    print(f"  image      {where}")
    print("  packages   " + ", ".join(f"{name} {version}" for name, version in sorted(chain["packages"].items())))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from pipelines.reproduce import reproduce

    result = reproduce(args.model, version=args.version, alias=args.alias)
    print(f"{result.model} v{result.version}: registered sha256 {result.registered_sha256}")
    print(f"{' ' * len(result.model)}  reproduced sha256 {result.reproduced_sha256}")
    if result.same:
        print("REPRODUCED: the same data, config and code gave the same model bytes")
        for note in result.differences:
            print(f"  (differs, without changing the bytes: {note})")
        return 0
    print(
        "DIFFERENT" + (": " if result.differences else ": nothing recorded differs; the training is not deterministic")
    )
    for note in result.differences:
        print(f"  - {note}")
    return 1
