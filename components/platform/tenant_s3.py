"""A tenant's S3 key, declared once: its actions on each tenant bucket, and the one place it may not write.

The key is scoped to `<bucket>/<tenant>/*` in every tenant bucket (components/platform/buckets.py
TENANT_BUCKETS). Inside that prefix it may change objects everywhere but in `decisions`: the decision
log there is the evidence of which model made which decision, written by the scoring transformer's
decisions writer (devstack/tenants.py `<tenant>-decisions`; the cluster's tenant-decisions-credentials),
and an auditor reads it. A tenant whose key could put, overwrite or delete its own decision files could
forge that evidence. So in `decisions` its key reads and lists the log, and writes only its late
outcomes beside it, under OUTCOMES_FOLDER (components/platform/outcomes.py writes them there).

`tenant_grants` is that rule. Two renderings read it, so the loopback stack and the cluster say the same:
- the SeaweedFS identity's actions (devstack/tenants.py s3_actions): `Write:decisions/<t>/_outcomes/*`,
  where SeaweedFS grants an action ending in `*` to every `<action>:<bucket>/<key>` it is a prefix of;
- the cluster's MinIO policy for the key in tenant-s3-credentials (manifests/out-of-band-secrets.yaml),
  printed for the platform team by `python -m components.platform.tenant_s3 <tenant>`.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from components.platform.buckets import DECISIONS, TENANT_BUCKETS

__all__ = [
    "MINIO_ACTIONS",
    "OUTCOMES_FOLDER",
    "S3_ACTIONS",
    "S3_CHANGES",
    "USAGE",
    "main",
    "minio_policy",
    "tenant_grants",
    "tenant_write_prefix",
]

OUTCOMES_FOLDER = "_outcomes"
"""Where a tenant's late outcomes sit beside its decision log (`decisions/<namespace>/_outcomes/`): the
only place in `decisions` its key may write. The leading `_` hides the folder from the log's readers."""
S3_ACTIONS = ("Read", "Write", "List", "Tagging")
"""A tenant key's action classes, in SeaweedFS's names."""
S3_CHANGES = ("Write", "Tagging")
"""The classes that change an object (put, overwrite, delete, multipart, a copy onto it, its tags):
in `decisions` only under OUTCOMES_FOLDER."""
MINIO_ACTIONS: dict[str, tuple[str, ...]] = {
    "Read": ("s3:GetObject",),
    "Write": ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
    "List": ("s3:ListBucket",),
    "Tagging": ("s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"),
}
"""Each class as MinIO's policy actions. No version actions: DeleteObject in a versioned bucket only
adds a delete marker, and removing a version is nobody's but the platform's."""
USAGE = "python -m components.platform.tenant_s3"
"""How the platform team prints a tenant's MinIO policy (manifests/out-of-band-secrets.yaml names it)."""
_WRITES_INSIDE = {DECISIONS: f"{OUTCOMES_FOLDER}/"}
"""Per bucket, the folder inside the tenant's prefix its key may change (absent: the whole prefix)."""


def tenant_write_prefix(bucket: str, name: str) -> str:
    """Where tenant `name`'s key may change objects in `bucket`: `<name>/`, but in `decisions`
    `<name>/_outcomes/` (its outcomes, never the decision log itself)."""
    return f"{name}/{_WRITES_INSIDE.get(bucket, '')}"


def tenant_grants(name: str, *, writes_own_log: bool = False) -> list[tuple[str, str, str]]:
    """Tenant `name`'s key as (action class, bucket, key prefix), everything under the prefix granted.
    `writes_own_log` is the grant before the log was closed to the tenant (`decisions/<name>/` all
    writable): a policy broken on purpose, for the isolation tests only."""
    grants = []
    for bucket in TENANT_BUCKETS:
        for action in S3_ACTIONS:
            changes = action in S3_CHANGES and not writes_own_log
            grants.append((action, bucket, tenant_write_prefix(bucket, name) if changes else f"{name}/"))
    return grants


def minio_policy(name: str, *, writes_own_log: bool = False) -> dict[str, Any]:
    """The MinIO (IAM) policy of tenant `name`'s key, statement by statement from `tenant_grants`:
    object actions on `arn:aws:s3:::<bucket>/<prefix>*`, ListBucket on the bucket for keys under the
    tenant's prefix only (the `s3:prefix` condition). `writes_own_log`: as tenant_grants."""
    objects: dict[str, list[str]] = {}
    listed: dict[str, list[str]] = {}
    for action, bucket, prefix in tenant_grants(name, writes_own_log=writes_own_log):
        if action == "List":
            listed.setdefault(bucket, []).append(f"{prefix}*")
        else:
            objects.setdefault(f"arn:aws:s3:::{bucket}/{prefix}*", []).extend(MINIO_ACTIONS[action])
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": sorted(actions), "Resource": [resource]} for resource, actions in objects.items()
    ]
    statements += [
        {
            "Effect": "Allow",
            "Action": list(MINIO_ACTIONS["List"]),
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": prefixes}},
        }
        for bucket, prefixes in listed.items()
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def main(argv: list[str] | None = None) -> int:
    """`python -m components.platform.tenant_s3 <tenant>`: the policy JSON, for `mc admin policy create`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", args[0]):
        shown = repr(args[0]) if len(args) == 1 else f"{len(args)} arguments"
        print(f"tenant_s3: {shown}: give one tenant (namespace) name, e.g. {USAGE} fraud", file=sys.stderr)
        return 2
    print(json.dumps(minio_policy(args[0]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
