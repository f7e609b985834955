"""`mlops isolation-check`'s writer-secret rows (security review, HIGH), without a stack: they judge a
member's Workflow with the platform's installed admission policies (real OPA engine), so the rows'
outcomes are the policies'. Positive control first (the tenant's own key is admitted), then the
attack (the decisions writer's Secret, as AWS_* and mounted: DENIED), then the policy removed on
purpose (the rows read LEAK: they would see the hole the review found)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mlops import admission
from mlops.isolation import DENIED, ERROR, LEAK, OK, SURFACES, controls, writer_secret
from mlops.isolation.outcomes import classify
from mlops.isolation.scene import Scene


@dataclass(frozen=True)
class _Tenant:
    name: str
    password: str = "p"


FRAUD = _Tenant("fraud")
RULE = "decisions-writer-secret-only-in-the-transformer"


def _scene() -> Scene:
    return Scene(None, FRAUD, _Tenant("forecast"), {}, [])  # type: ignore[arg-type]


def _rows() -> dict[str, str]:
    return {path: classify(path, lambda p=probe: p(_scene())).observed for path, probe in writer_secret.PROBES}  # type: ignore[misc]


def test_the_rows_are_registered() -> None:
    (surface,) = [s for s in SURFACES if s.name == "writer-secret"]
    assert [path for path, _ in surface.probes] == [
        "member Workflow takes the writer Secret as AWS_*",
        "member Workflow mounts the writer Secret",
    ]
    assert surface.available(None) == ""  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control's S3 half (the tenant's own key lists its log) needs the loopback stack: its
    test is tests/integration/test_tenancy.py; here it answers as a working key would."""
    monkeypatch.setattr(writer_secret, "own_key_lists_its_log", lambda stack, tenant: "listed")


def test_the_control_is_admitted_and_the_attack_denied() -> None:
    (control,) = controls(None, FRAUD, ["writer-secret"])  # type: ignore[arg-type]
    assert control.observed == OK, control.detail
    rows = _rows()
    assert set(rows.values()) == {DENIED}, rows
    detail = classify("p", lambda: writer_secret.takes_the_writer_secret(_scene())).detail
    assert RULE in detail and "tenant-decisions-credentials" in detail, detail


def test_a_control_whose_key_fails_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken credentials make the control ERROR (the check proved nothing), never OK."""
    from botocore.exceptions import ClientError

    def refused(stack: object, tenant: object) -> str:
        raise ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": "no"}}, "ListObjectsV2")

    monkeypatch.setattr(writer_secret, "own_key_lists_its_log", refused)
    (control,) = controls(None, FRAUD, ["writer-secret"])  # type: ignore[arg-type]
    assert control.observed == ERROR, control


def test_without_the_policy_the_rows_read_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control broken on purpose: the installed policies less the writer-secret rule admit the
    attack, and the rows say LEAK; the control stays OK."""
    installed = admission.PolicySet()
    broken = admission.PolicySet(policies=[p for p in installed.policies if p.name != RULE])
    assert len(broken.policies) == len(installed.policies) - 1
    monkeypatch.setattr(writer_secret, "_installed", lambda: broken)
    assert set(_rows().values()) == {LEAK}
    (control,) = controls(None, FRAUD, ["writer-secret"])  # type: ignore[arg-type]
    assert control.observed == OK
