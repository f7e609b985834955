"""`mlops isolation-check`'s gate row on the tenancy stack (mlops/isolation/gate.py): a model swapped
after evaluate is not registered."""

from __future__ import annotations

import pytest

from devstack.stack import Stack
from devstack.tenants import add_tenant, get_tenant
from mlops.isolation import DENIED, LEAK, OK, check

pytestmark = pytest.mark.integration


def rows(stack: Stack) -> dict[str, tuple[str, str]]:
    for name in ("fraud", "pricing"):
        add_tenant(stack, name)  # idempotent: the tenancy tests add them too
    attempts = check(stack, get_tenant(stack, "pricing"), get_tenant(stack, "fraud"), ["gate"])
    return {attempt.path: (attempt.expected, attempt.observed) for attempt in attempts}


def test_a_model_swapped_after_evaluate_is_not_registered(
    tenancy_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 29: register compared the model with train's metadata, never with the sha256 evaluate
    scored. Positive control first: the scored bytes register in the tenant's own registry (OK);
    the swapped bytes are refused (DENIED); with register's check removed, the control broken on
    purpose, the same row says LEAK."""
    from mlops.isolation import gate

    observed = rows(tenancy_stack)
    assert observed == {
        "gate register the model evaluate scored": (OK, OK),
        "gate register a model swapped after evaluate": (DENIED, DENIED),
    }, observed
    # what register did before: the step's process runs with the check removed
    broken = (
        "import sys; from components.steps import register; register._require_scored = lambda sha, scores: None;"
        " from mlops.cli import main; sys.exit(main(['step', 'register', *sys.argv[1:]]))"
    )
    monkeypatch.setattr(gate, "REGISTER", ("-c", broken))
    assert rows(tenancy_stack)["gate register a model swapped after evaluate"] == (DENIED, LEAK)
