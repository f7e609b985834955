"""Isolation probes on the decision log (issue 32): each tenant's transformer writes it under
`decisions/<namespace>/` with the tenant's own S3 key, and no tenant reads, lists or writes another's.

A decision names a customer's entity, its features and the model's verdict: another tenant reading
it is a data leak, writing into it forges an audit trail. The control writes and reads a log file
of the attacker's own (what its transformer and `mlops audit` do); the probes try the target's file
the seed planted (`scene.seed`, at decision_record.file_key's layout), its prefix, and the whole
bucket. `tests/integration/test_tenancy.py` broadens one tenant's policy and sees these rows LEAK.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from components.serving.decision_record import BUCKET, file_key, prefix
from mlops.isolation.s3 import listed
from mlops.isolation.scene import s3_client

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "planted_key"]

PROBE_MODEL = "isolation-probe"


def planted_key(namespace: str) -> str:
    """Where the seed plants the target's decision file: a batch of a model no pipeline has."""
    return file_key(namespace, PROBE_MODEL, "1", time.strftime("%Y-%m-%d", time.gmtime()), part=str(int(time.time())))


def own_decisions(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the tenant writes a decision file under its own prefix and reads it back."""
    s3 = s3_client(stack, tenant)
    key = planted_key(tenant.name).replace(f"model={PROBE_MODEL}", "model=isolation-control")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"own decisions")
    try:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    finally:
        s3.delete_object(Bucket=BUCKET, Key=key)
    if body != b"own decisions":
        raise RuntimeError(f"own decision file read back {body!r}")
    return f"PUT and GET of a decision file under s3://{BUCKET}/{prefix(tenant.name)}"


def get(scene: Scene) -> str:
    body = scene.s3.get_object(Bucket=BUCKET, Key=scene.planted["decisions"])["Body"].read()
    return f"read {len(body)} bytes of the target's decisions s3://{BUCKET}/{scene.planted['decisions']}"


def put(scene: Scene) -> str:
    key = f"{prefix(scene.target.name)}forged-by-{scene.attacker.name}.parquet"
    scene.s3.put_object(Bucket=BUCKET, Key=key, Body=b"forged decisions")
    s3_client(scene.stack, scene.target).delete_object(Bucket=BUCKET, Key=key)
    return f"wrote a forged decision file into s3://{BUCKET}/{key}"


def list_prefix(scene: Scene) -> str:
    target = prefix(scene.target.name)
    keys = [item["Key"] for item in scene.s3.list_objects_v2(Bucket=BUCKET, Prefix=target).get("Contents", [])]
    return _listed("ListObjectsV2 of the target's decisions", keys, target)


def list_bucket(scene: Scene) -> str:
    pages = scene.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return _listed("ListObjectsV2 of the whole decisions bucket", keys, prefix(scene.target.name))


def _listed(what: str, keys: list[str], target: str) -> str:
    """s3.listed's one rule (Denied when none of the target's keys shows), naming this bucket."""
    return listed(what, keys, target).replace("s3://models/", f"s3://{BUCKET}/")


OWN = (("own: decision log in own prefix", own_decisions),)
PROBES = (
    ("decisions GET target decision file", get),
    ("decisions PUT into target prefix", put),
    ("decisions LIST target prefix", list_prefix),
    ("decisions LIST whole bucket", list_bucket),
)
