"""`python -m tests.integration.timed_register ARGS_JSON`: the register step with the given arguments,
timed from after its imports; prints {"error", "kind", "seconds"} as one JSON line.

The S3 misconfiguration drill (tests/integration/test_drills.py) runs it with a misconfigured
environment and checks the step fails in seconds, naming what to set. It runs as a child of the
session's warm worker (MLflow, boto3 and Feast's MLflow plugin imported already); the imports are
outside the clock either way.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

__all__ = ["main"]


def main(argv: list[str]) -> int:
    import mlflow.tracking.request_header.registry  # noqa: F401  (Feast's MLflow plugin) before the clock

    from components.config import RegisterSettings
    from components.errors import ComponentError
    from components.steps.register import register

    args = json.loads(argv[0])
    started = time.monotonic()
    outcome: dict[str, Any]
    try:
        register(**{**args, "settings": RegisterSettings(**args["settings"])})
        outcome = {"error": None}
    except ComponentError as error:
        outcome = {"error": str(error), "kind": error.kind}
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
