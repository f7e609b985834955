"""Isolation probes on the object store's own HTTP ports: SeaweedFS's master and filer, outside S3.

SeaweedFS answers HTTP on its master and filer ports with no key at all; `mlops dev up` runs weed
in a network namespace of its own, so from the host loopback those ports must not be reachable,
and where they are they must want a token signed with the stack's key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.isolation.outcomes import Denied

if TYPE_CHECKING:
    from mlops.isolation.scene import Scene

__all__ = ["PROBES"]


def _side_door(port: int, path: str, what: str) -> Any:
    """GET on one of weed's own HTTP ports, with no key; unreachable or refused is Denied."""
    import requests

    try:
        response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except requests.ConnectionError as error:
        raise Denied(f"the {what}'s port is not reachable from here (weed runs in a network of its own)") from error
    if response.status_code != 200:
        raise Denied(f"the {what} answered HTTP {response.status_code} (it wants a token signed with the stack's key)")
    return response


def master(scene: Scene) -> str:
    """SeaweedFS's master answers HTTP with no key at all; its /col/delete drops a bucket's
    volumes, every tenant's objects at once. Only asked for its status here."""
    _side_door(scene.stack.ports.weed(0), "/dir/status", "master")
    return "the master's /dir/status answered without a key: its /col/delete would drop every tenant's objects"


def filer(scene: Scene) -> str:
    """The filer's HTTP port serves every object by path, outside the S3 identities."""
    from devstack.seaweedfs import filer_path
    from mlops.isolation.scene import s3_client

    key = scene.planted["key"]  # models is versioned (components/platform/immutable.py): the filer keeps versions
    version = s3_client(scene.stack, scene.target).head_object(Bucket="models", Key=key).get("VersionId")
    response = _side_door(scene.stack.ports.weed(4), filer_path("models", key, version), "filer")
    return f"the filer served s3://models/{key} ({len(response.content)} bytes) without a key"


PROBES = (
    ("seaweedfs master admin API (side door)", master),
    ("seaweedfs filer GET target object (side door)", filer),
)
