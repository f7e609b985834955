"""`mlops new`, `data`: a new pipeline folder from a reference one, and a pipeline's synthetic dataset."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.scaffold import MODEL_KINDS


def register(sub: Any, argv: list[str]) -> None:
    new = sub.add_parser(
        "new", help="a team's pipeline as a project of its own, on this library's pinned version and component image"
    )
    new.add_argument("name", help="lowercase letters and digits; the package is <name>_pipeline")
    new.add_argument("--from", dest="source", default="fraud", help="the pipeline to copy (default: fraud)")
    new.add_argument("--out", required=True, help="the project folder to create, e.g. ../churn-pipeline")
    new.add_argument(
        "--owner",
        required=True,
        help="the email that owns the pipeline: config.yaml's owner (drift alerts page it) and the model card's",
    )
    new.add_argument(
        "--model",
        choices=MODEL_KINDS,
        default="xgboost",
        help="train.model_type of the new pipeline (default: xgboost)",
    )
    new.add_argument(
        "--index-url",
        help="the package index the project installs from, with hashes (its Makefile and CI); default: pip's"
        " index-url here (PIP_INDEX_URL or `pip config`), refused when there is none (never PyPI)",
    )
    new.set_defaults(handler=_new)

    data = sub.add_parser("data", help="write a pipeline's synthetic dataset")
    data.add_argument("pipeline")
    data.add_argument("--rows", type=int, default=50_000)
    data.add_argument("--seed", type=int, default=7)
    data.add_argument("--out", required=True)
    data.set_defaults(handler=_data)


def _new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.placeholders import TOKEN, placeholders_in
    from pipelines.scaffold import scaffold_project

    target = scaffold_project(
        args.name, Path(args.out), source=args.source, index_url=args.index_url, owner=args.owner, model=args.model
    )
    print(f"created {target}: the {args.name} pipeline (package {args.name}_pipeline) on this library's pinned version")
    left = placeholders_in(target / f"{args.name}_pipeline")
    print(f"left to change ({len(left)}): each `{TOKEN}` line; `mlops lint --pipeline` refuses the pipeline until")
    print("they are written (the demo runs as it is, on the synthetic data):")
    for item in left:
        print(f"  [ ] {item.describe(target)}")
    print(f"  cd {target} && make lock     # requirements.lock: every package pinned with its sha256; commit it")
    print(f"  cd {target} && make demo     # install, then run it end to end")
    print(f"  mlops run {target}/{args.name}_pipeline   # or run the folder as it is, uninstalled")
    return 0


def _data(args: argparse.Namespace) -> int:
    from components import artifacts
    from pipelines.local import declaration, generator

    pipeline = declaration(args.pipeline)
    frame = generator(pipeline)(args.rows, args.seed)  # a pipeline without one: refused naming --data
    artifacts.write_parquet(args.out, frame)
    label = pipeline.config().materialize.label_column
    print(json.dumps({"rows": len(frame), "label": label, "label_mean": round(float(frame[label].mean()), 5),
                      "out": args.out}))  # fmt: skip
    return 0
