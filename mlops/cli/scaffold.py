"""`mlops new`, `data`: a new pipeline folder from a reference one, and a pipeline's synthetic dataset."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any


def register(sub: Any, argv: list[str]) -> None:
    new = sub.add_parser(
        "new", help="a team's pipeline as a project of its own, on this library's pinned version and component image"
    )
    new.add_argument("name", help="lowercase letters and digits; the package is <name>_pipeline")
    new.add_argument("--from", dest="source", default="fraud", help="the pipeline to copy (default: fraud)")
    new.add_argument("--out", required=True, help="the project folder to create, e.g. ../churn-pipeline")
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

    from pipelines.scaffold import scaffold_project

    target = scaffold_project(args.name, Path(args.out), source=args.source, index_url=args.index_url)
    print(f"created {target}: the {args.name} pipeline (package {args.name}_pipeline) on this library's pinned version")
    print(f"  cd {target} && make lock     # requirements.lock: every package pinned with its sha256; commit it")
    print(f"  cd {target} && make demo     # install, then run it end to end")
    print(f"  mlops run {target}/{args.name}_pipeline   # or run the folder as it is, uninstalled")
    return 0


def _data(args: argparse.Namespace) -> int:
    from components import artifacts
    from pipelines.local import declaration

    data = importlib.import_module(f"{declaration(args.pipeline).package}.data")
    frame = data.generate(args.rows, args.seed)
    artifacts.write_parquet(args.out, frame)
    label = "is_fraud" if "is_fraud" in frame else frame.columns[-1]
    print(json.dumps({"rows": len(frame), "positive_rate": round(float(frame[label].mean()), 5), "out": args.out}))
    return 0
