"""`mlops isolation-check --as A --target B`: try every path a curious member of A has into B.

First, as B, it leaves something to find (`scene.seed`): an object under B's S3 prefixes, a run
with an artifact in B's experiment, a registered model with an alias, a table in B's schema, a key
in B's online store (Redis). Then, as A, with A's own credentials only, it tries to read, list,
write and delete each of them. Each path is DENIED (refused, or filtered out of a listing) or LEAK
(A saw or changed B's data); an attempt that fails for another reason is ERROR, which proves
nothing and fails the check.

Positive controls come first: A reads and writes its own data on every surface (OK). An
authentication failure is never DENIED: with broken credentials every path would be refused,
and a check that counted that as isolation would pass without testing anything.

One module per surface holds its probes as top-level functions; `table.SURFACES` registers them
(how to add a path: `mlops/isolation/table.py`).
"""

from __future__ import annotations

from mlops.isolation.outcomes import AUTHENTICATION_FAILED, DENIED, ERROR, LEAK, OK, Attempt, Denied
from mlops.isolation.scene import Scene, seed
from mlops.isolation.table import SURFACES, Surface, check, controls, not_tried

__all__ = [
    "AUTHENTICATION_FAILED",
    "DENIED",
    "ERROR",
    "LEAK",
    "OK",
    "SURFACES",
    "Attempt",
    "Denied",
    "Scene",
    "Surface",
    "check",
    "controls",
    "not_tried",
    "seed",
]
