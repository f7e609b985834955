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
