"""The decision log's isolation probes (mlops/isolation/decisions.py, issue 32) on known listings.

The listings come from the listing probes' stand-in client (tests/test_isolation_listing_probes.py,
no S3 server); the real server's answers are the isolation check's on the tenancy stack
(tests/integration/test_tenancy.py: every path DENIED, LEAK once a policy is broadened).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from components.serving.decision_record import BUCKET
from mlops.isolation import SURFACES, decisions
from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import Scene
from tests.test_isolation_listing_probes import ListingOnlyS3


def _scene(keys: list[str]) -> Scene:
    attacker, target = SimpleNamespace(name="fraud"), SimpleNamespace(name="churn")
    scene = Scene(stack=None, attacker=attacker, target=target, planted={})  # type: ignore[arg-type]
    scene._s3 = ListingOnlyS3(keys)
    return scene


@pytest.mark.parametrize("probe", [decisions.list_prefix, decisions.list_bucket], ids=lambda p: p.__name__)
def test_a_listing_of_the_targets_decisions_leaks_and_one_without_them_is_denied(probe: Any) -> None:
    theirs = decisions.planted_key("churn")
    assert theirs.startswith("churn/model=isolation-probe/version=1/date=") and theirs.endswith(".parquet")
    leak = probe(_scene([theirs, "fraud/model=m/version=1/date=2026-12-05/part-1.parquet"]))
    assert leak.endswith(f" listed 1 of the target's keys under s3://{BUCKET}/churn/"), leak
    with pytest.raises(Denied, match="returned nothing of the target's"):
        probe(_scene(["fraud/model=m/version=1/date=2026-12-05/part-1.parquet", "churnx/not-theirs.parquet"]))


def test_the_decisions_surface_is_checked_with_a_control_and_read_write_list_and_self_forgery_probes() -> None:
    (surface,) = [s for s in SURFACES if s.name == "decisions"]
    assert [path for path, _ in surface.own] == ["own: decision log in own prefix"]
    paths = [path for path, _ in surface.probes]
    assert paths == [
        "decisions GET target decision file",
        "decisions PUT into target prefix",
        "decisions LIST target prefix",
        "decisions LIST whole bucket",
        "decisions own key PUT a forged decision into own log",  # its own evidence (self-forgery)
        "decisions own key overwrites own logged decision",
        "decisions own key DELETE own logged decision",
        "decisions own key multi-delete own logged decision",
        "decisions own key multipart upload into own log",
    ]


class DeletingS3:
    """Answers the own-log delete probes: DeleteObjects with `key_error` as its per-key error code
    (None: deleted), and the HEAD after it with `head_error` (404 once deleted)."""

    def __init__(self, key_error: str | None = None, head_error: str | None = None) -> None:
        self.key_error, self.head_error, self.deleted = key_error, head_error, False

    def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.deleted = True
        return {}

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        if self.key_error is not None:
            return {"Errors": [{"Key": Delete["Objects"][0]["Key"], "Code": self.key_error}]}
        self.deleted = True
        return {"Deleted": Delete["Objects"]}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        code = self.head_error or ("404" if self.deleted else None)
        if code is not None:
            raise ClientError({"Error": {"Code": code, "Message": code}}, "HeadObject")
        return {}


def _deleting_scene(monkeypatch: pytest.MonkeyPatch, s3: DeletingS3) -> Scene:
    writer = SimpleNamespace(put_object=lambda **_: {}, delete_object=lambda **_: {})
    monkeypatch.setattr(decisions, "writer_s3", lambda stack, tenant: writer)
    scene = _scene([])
    scene._s3 = s3
    return scene


@pytest.mark.parametrize(
    ("key_error", "verdict"),
    [(None, "LEAK"), ("AccessDenied", "DENIED"), ("InternalError", "ERROR"), ("SlowDown", "ERROR")],
)
def test_only_an_access_denied_per_key_error_of_delete_objects_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, key_error: str | None, verdict: str
) -> None:
    """Security review LOW 6: every per-key DeleteObjects error was DENIED, InternalError and SlowDown
    included; only AccessDenied refuses the attacker, the rest prove nothing (ERROR). No error and the
    file gone is the LEAK (the control that the probe sees a delete)."""
    from mlops.isolation.outcomes import classify

    scene = _deleting_scene(monkeypatch, DeletingS3(key_error=key_error))
    attempt = classify("multi-delete", lambda: decisions.multi_deletes_a_decision(scene))
    assert attempt.observed == verdict, attempt
    if key_error is not None:
        assert key_error in attempt.detail


@pytest.mark.parametrize("probe", [decisions.deletes_a_decision, decisions.multi_deletes_a_decision])
def test_a_refused_head_after_a_delete_that_answered_is_an_error_not_a_refusal(
    monkeypatch: pytest.MonkeyPatch, probe: Any
) -> None:
    """Security review LOW 6: the delete answered; an AccessDenied on the HEAD that checks it says
    nothing about the delete. It was DENIED; it is ERROR. A 404 there is the LEAK (control)."""
    from mlops.isolation.outcomes import classify

    refused = classify("delete", lambda: probe(_deleting_scene(monkeypatch, DeletingS3(head_error="AccessDenied"))))
    assert refused.observed == "ERROR" and "HEAD" in refused.detail and "AccessDenied" in refused.detail, refused
    assert classify("delete", lambda: probe(_deleting_scene(monkeypatch, DeletingS3()))).observed == "LEAK"
