"""`python -m tests.integration.online_read STORE_DIR USERS_JSON`: fraud's online features for the
users, read as a scoring service reads them (components.steps.materialize.online_features), printed
as one JSON line.

The drills (tests/integration/test_drills.py) run it in a process of its own with the platform's
environment: a child of the session's warm worker, which has Feast imported already (a fresh
interpreter spent seconds importing it for each of the Redis drill's three reads).
"""

from __future__ import annotations

import json
import sys

__all__ = ["main"]


def main(argv: list[str]) -> int:
    from components.steps.materialize import online_features

    store_dir, users = argv[0], json.loads(argv[1])
    values = online_features("fraud", "fraud_model_v1", [{"user_id": user} for user in users], store_dir)
    print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
