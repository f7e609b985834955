"""The services a benchmark measures on: a stack of its own, or a running one given by `--stack`.

By default a benchmark starts the services it needs on free ports under a temporary folder and
stops them at the end, so its figures come from an otherwise idle stack. `--stack ROOT` (or
`--stack` alone: `mlops dev up`'s stack, devstack.stack.default_root) measures on a stack that
already runs instead, and leaves it running: no PostgreSQL initdb, MLflow schema creation or
SeaweedFS start before the first figure. The benchmark then writes under names of its own
(bench_* Feast projects, its own models and experiments, its own S3 keys) and stops nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack import process
from devstack.stack import PORT_SPAN, Ports, Stack, default_root

__all__ = ["add_stack_argument", "bench_stack"]


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    """`--stack [ROOT]`: measure on a running stack (ROOT, or `mlops dev up`'s) instead of one of its own."""
    parser.add_argument(
        "--stack",
        type=Path,
        nargs="?",
        const=None,
        default=argparse.SUPPRESS,
        metavar="ROOT",
        help="measure on the running stack under ROOT (no ROOT: `mlops dev up`'s) and leave it running;"
        " default: start a stack of its own on free ports and stop it at the end",
    )


@contextmanager
def bench_stack(
    args: argparse.Namespace, services: tuple[str, ...], prefix: str, *, echo: bool = False, **options: Any
) -> Iterator[Stack]:
    """The stack to measure on: the running one `--stack` names (every one of `services` must run
    there, and each of `options` must be its setting), or a new one under a temporary folder,
    started with `options` and removed afterwards."""
    if hasattr(args, "stack"):
        root = args.stack or default_root()
        stack = Stack.load(root)
        if stack is None:
            raise SystemExit(f"--stack: no stack under {root} (no stack.json); start one with `mlops dev up`"
                             " or leave --stack out to start one of its own")  # fmt: skip
        stopped = [service for service in services if not stack.running(service)]
        if stopped:
            raise SystemExit(f"--stack: {', '.join(stopped)} not running under {root}; start them with"
                             " `mlops dev up` or leave --stack out to start a stack of its own")  # fmt: skip
        unlike = {key: getattr(stack, key) for key, value in options.items() if getattr(stack, key) != value}
        if unlike:
            wanted = ", ".join(f"{key}={options[key]!r}" for key in unlike)
            raise SystemExit(f"--stack: the stack under {root} has {unlike}, this benchmark needs {wanted};"
                             " leave --stack out to start a stack of its own")  # fmt: skip
        if echo:
            print(f"measuring on the running stack under {root}", flush=True)
        yield stack
        return
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # PostgreSQL runs as its own user when the benchmark runs as root
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)), **options)
    try:
        if echo:
            print(f"starting services under {root}", flush=True)
        stack.up(services, echo=echo)
        yield stack
    finally:
        if stack.monitoring:
            stack.monitoring_services().down()
        stack.down(services)
        shutil.rmtree(root, ignore_errors=True)
