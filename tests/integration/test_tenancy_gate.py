"""`mlops isolation-check`'s gate row on the tenancy stack (mlops/isolation/gate.py): a model swapped
after evaluate is not registered."""

from __future__ import annotations

from functools import partial

import pytest

from devstack.stack import Stack
from devstack.tenants import get_tenant
from mlops.isolation import DENIED, LEAK, OK, Scene, check
from mlops.isolation.outcomes import classify
from mlops.isolation.scene import as_tenant

pytestmark = pytest.mark.integration

SWAPPED = "gate register a model swapped after evaluate"


def rows(stack: Stack) -> dict[str, tuple[str, str]]:
    attempts = check(stack, get_tenant(stack, "pricing"), get_tenant(stack, "fraud"), ["gate"])
    return {attempt.path: (attempt.expected, attempt.observed) for attempt in attempts}


def test_a_model_swapped_after_evaluate_is_not_registered(
    tenants_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 29: register compared the model with train's metadata, never with the sha256 evaluate
    scored. Positive control first: the scored bytes register in the tenant's own registry (OK);
    the swapped bytes are refused (DENIED); with register's check removed, the control broken on
    purpose, the same probe says LEAK.

    The session's tenants_stack has fraud and pricing already (each `add_tenant` restarts the
    object store, so adding them here again cost seconds and proved nothing new). The broken run
    repeats only the probe, classified as check() classifies it: the positive control and the
    seeded target it would redo are the first check's, on the same stack."""
    from mlops.isolation import gate

    observed = rows(tenants_stack)
    assert observed == {
        "gate register the model evaluate scored": (OK, OK),
        SWAPPED: (DENIED, DENIED),
    }, observed
    # what register did before: the step's process runs with the check removed
    broken = (
        "import sys; from components.steps import register; register._require_scored = lambda sha, scores: None;"
        " from mlops.cli import main; sys.exit(main(['step', 'register', *sys.argv[1:]]))"
    )
    monkeypatch.setattr(gate, "REGISTER", ("-c", broken))
    pricing = get_tenant(tenants_stack, "pricing")
    scene = Scene(tenants_stack, pricing, get_tenant(tenants_stack, "fraud"), planted={})
    ((path, probe),) = [(path, probe) for path, probe in gate.PROBES if path == SWAPPED]
    with as_tenant(pricing):
        attempt = classify(path, partial(probe, scene))
    assert (attempt.expected, attempt.observed) == (DENIED, LEAK), attempt
