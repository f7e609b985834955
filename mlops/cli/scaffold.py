"""`mlops new`, `data`: a new pipeline folder from a reference one, and a pipeline's synthetic dataset."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any


def register(sub: Any, argv: list[str]) -> None:
    new = sub.add_parser("new", help="scaffold a new pipeline folder from a reference pipeline")
    new.add_argument("name")
    new.add_argument("--from", dest="source", default="fraud", help="the pipeline to copy (default: fraud)")
    new.set_defaults(handler=_new)

    data = sub.add_parser("data", help="write a pipeline's synthetic dataset")
    data.add_argument("pipeline")
    data.add_argument("--rows", type=int, default=50_000)
    data.add_argument("--seed", type=int, default=7)
    data.add_argument("--out", required=True)
    data.set_defaults(handler=_data)


def _new(args: argparse.Namespace) -> int:
    from pipelines.scaffold import scaffold

    target = scaffold(args.name, source=args.source)
    print(json.dumps({"created": str(target), "next": f"mlops run {args.name}"}))
    return 0


def _data(args: argparse.Namespace) -> int:
    from components import artifacts

    data = importlib.import_module(f"pipelines.{args.pipeline}.data")
    frame = data.generate(args.rows, args.seed)
    artifacts.write_parquet(args.out, frame)
    label = "is_fraud" if "is_fraud" in frame else frame.columns[-1]
    print(json.dumps({"rows": len(frame), "positive_rate": round(float(frame[label].mean()), 5), "out": args.out}))
    return 0
