"""The four S3 listing probes of `mlops isolation` share one verdict (mlops.isolation.s3.listed).

Issue 30 (repeated logic): list_prefix, list_bucket, list_v1 and list_versions each listed, then
raised DENIED if nothing came back, in four copies. They now share `listed`. The listings here come
from a stand-in client that answers the three list calls from a fixed set of keys (no S3 server);
the real server's answers are the isolation gate's, in tests/integration/test_tenancy_gate.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlops.isolation import s3
from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import Scene

LISTING_PROBES = [s3.list_prefix, s3.list_bucket, s3.list_v1, s3.list_versions]


class ListingOnlyS3:
    """Answers ListObjectsV2 (and its paginator), ListObjects and ListObjectVersions from `keys`,
    honouring Prefix as S3 does."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def _under(self, prefix: str) -> list[dict[str, str]]:
        return [{"Key": key} for key in self.keys if key.startswith(prefix)]

    def list_objects_v2(self, Bucket: str, Prefix: str = "") -> dict[str, Any]:
        return {"Contents": self._under(Prefix)}

    def list_objects(self, Bucket: str, Prefix: str = "") -> dict[str, Any]:
        return {"Contents": self._under(Prefix)}

    def list_object_versions(self, Bucket: str, Prefix: str = "") -> dict[str, Any]:
        return {"Versions": self._under(Prefix), "DeleteMarkers": []}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_objects_v2"
        return SimpleNamespace(paginate=lambda Bucket: [{"Contents": self._under("")}])


def _scene(keys: list[str]) -> Scene:
    scene = Scene(stack=None, attacker=SimpleNamespace(name="fraud"), target=SimpleNamespace(name="churn"), planted={})  # type: ignore[arg-type]
    scene._s3 = ListingOnlyS3(keys)
    return scene


@pytest.mark.parametrize("probe", LISTING_PROBES, ids=lambda probe: probe.__name__)
def test_each_listing_probe_is_denied_on_an_empty_listing_and_leaks_on_the_targets_keys(probe: Any) -> None:
    """issue 30: one verdict for the four listing probes (list, then DENIED if none of the target's)."""
    # a listing that shows the target's keys is a leak, counted
    leak = probe(_scene(["churn/model.onnx", "churn/card.md", "fraud/own.txt"]))
    assert leak.endswith(" listed 2 of the target's keys under s3://models/churn/")
    # the attacker's own keys are not the target's: DENIED
    with pytest.raises(Denied, match="returned nothing of the target's"):
        probe(_scene(["fraud/own.txt"]))
    with pytest.raises(Denied):
        probe(_scene([]))


def test_listed_counts_only_the_targets_prefix() -> None:
    """issue 30: the shared verdict reads the prefix, so a whole-bucket listing is judged like the others."""
    assert s3.listed("a listing", ["churn/a", "churnish/b", "fraud/c"], "churn/") == (
        "a listing listed 1 of the target's keys under s3://models/churn/"
    )
    with pytest.raises(Denied):
        s3.listed("a listing", ["churnish/b"], "churn/")
