"""Registered artifacts that cannot be changed after registration (issue 34 item 3).

Registered models live in MLflow's artifact bucket (`mlflow-artifacts/<tenant>/<run>/artifacts/...`,
a model version's source) and serving repositories in `models` (promote publishes each version once,
components/steps/triton_repository.py published_location). Both buckets are IMMUTABLE_BUCKETS:
versioned, with object lock and a default retention (OBJECT_LOCK: GOVERNANCE, RETENTION_DAYS), put on
by `mlops buckets ensure` (the cluster's bucket-setup Job) and by the devstack at every start, so an
existing stack is brought up to it too.

What that guarantees, measured on SeaweedFS 4.48 (tests/integration/test_immutable_artifacts.py;
docs/recovery.md, "Immutable artifacts", says what it does and does not):
- every version written there is kept for the retention: a key without s3:BypassGovernanceRetention
  (SeaweedFS: an identity without Admin; every tenant key) is refused DeleteObject with a VersionId,
  DeleteObjects of versions, the bypass header, shorter retention, a legal hold taken off and
  versioning suspended;
- a tenant's overwrite of a registered key is a new version on top and its plain delete is a delete
  marker: the registered bytes stay, readable by VersionId, and `mlops verify` reports the key
  CORRUPT or MISSING until the platform admin restores that version (docs/recovery.md).
GOVERNANCE, not COMPLIANCE: the platform admin (bypass permission) can still remove a version on
purpose (a leaked secret in an artifact); COMPLIANCE would refuse even that, and SeaweedFS enforces it.
"""

from __future__ import annotations

from typing import Any

from components.errors import ComponentError

__all__ = [
    "IMMUTABLE_BUCKETS",
    "LOCK_ACTIONS",
    "MLFLOW_ARTIFACTS",
    "MODELS",
    "OBJECT_LOCK",
    "RETENTION_DAYS",
    "RETENTION_MODE",
    "create",
    "is_immutable",
    "lock",
    "lock_existing",
]

STEP = "buckets"
MLFLOW_ARTIFACTS = "mlflow-artifacts"
"""MLflow's artifact root (`s3://mlflow-artifacts/<tenant>`): a registered model version's source."""
MODELS = "models"
"""The serving root (`s3://models/<tenant>`): promote's published, content-addressed repositories."""
IMMUTABLE_BUCKETS = (MLFLOW_ARTIFACTS, MODELS)
"""The buckets whose versions cannot be deleted or changed for RETENTION_DAYS."""
RETENTION_MODE = "GOVERNANCE"
RETENTION_DAYS = 365
"""How long each version is kept at the least (a version older than this is still kept: nothing
expires it; the retention is how long nobody but the admin can remove it)."""
LOCK_ACTIONS = (
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:PutBucketVersioning",
    "s3:PutBucketObjectLockConfiguration",
)
"""The S3 actions (IAM names) that would undo the lock or work around it: no tenant key's policy grants
any (components/platform/tenant_s3.py minio_policy; on SeaweedFS, they are the `Admin` action's)."""
OBJECT_LOCK: dict[str, Any] = {
    "ObjectLockEnabled": "Enabled",
    "Rule": {"DefaultRetention": {"Mode": RETENTION_MODE, "Days": RETENTION_DAYS}},
}


def create(client: Any, bucket: str) -> None:
    """Create `bucket` with object lock (MinIO enables it at creation only; versioning comes with it)."""
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)


def lock(client: Any, bucket: str) -> None:
    """Versioning on and OBJECT_LOCK's default retention on an existing `bucket` (idempotent).
    A store that cannot add object lock to a bucket made without it is a clear error, not a
    bucket left mutable."""
    from botocore.exceptions import ClientError

    try:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=OBJECT_LOCK)
    except ClientError as error:
        found = error.response.get("Error", {})
        raise ComponentError(
            STEP,
            f"the object store refused versioning or object lock on bucket {bucket!r}"
            f" ({found.get('Code', '?')}: {found.get('Message', '')}); registered artifacts there could be"
            " deleted or overwritten",
            f"some stores (MinIO) add object lock only when a bucket is created: copy {bucket} aside"
            f" (mc mirror <alias>/{bucket} <alias>/{bucket}-old), remove it, run `mlops buckets ensure`"
            f" (it creates {bucket} with object lock), then copy the objects back",
        ) from error
    if not is_immutable(client, bucket):
        raise ComponentError(
            STEP,
            f"bucket {bucket!r} accepted versioning and object lock but does not report them back",
            "check the object store's version supports S3 object lock (SeaweedFS 4.48 and MinIO do)",
        )


def is_immutable(client: Any, bucket: str) -> bool:
    """Whether `bucket` is versioned with exactly OBJECT_LOCK's default retention."""
    from botocore.exceptions import ClientError

    if client.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        return False
    try:
        found = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError:  # ObjectLockConfigurationNotFoundError: a bucket without object lock
        return False
    return bool(found == OBJECT_LOCK)


def _retained(client: Any, where: dict[str, str]) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.get_object_retention(**where)
    except ClientError as error:  # none of its own: NoSuchObjectLockConfiguration (SeaweedFS: ...NotFoundError)
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") not in (400, 404):
            raise
        return False
    return True


def lock_existing(client: Any, bucket: str) -> tuple[int, list[str]]:
    """Give each version in `bucket` written before the lock came on (the default retention applies
    only to versions written after) the retention from now, read back; returns how many were given it
    and the keys of versions the store would not lock. Idempotent: a version with a retention is left
    as it is. SeaweedFS 4.48 keeps a retention on a pre-versioning ("null") version only while it is
    the latest, asked without a VersionId (with `VersionId=null` it answers 200 and keeps nothing), so
    a null version under a newer one is reported. `mlops buckets ensure --lock-existing`, once, on a
    store whose buckets held artifacts before (docs/recovery.md, "Immutable artifacts")."""
    from datetime import UTC, datetime, timedelta

    retention = {"Mode": RETENTION_MODE, "RetainUntilDate": datetime.now(UTC) + timedelta(days=RETENTION_DAYS)}
    locked, refused = 0, []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            where = {"Bucket": bucket, "Key": version["Key"]}
            if version.get("VersionId") not in (None, "null"):
                where["VersionId"] = version["VersionId"]
            elif not version.get("IsLatest"):
                refused.append(version["Key"])
                continue
            if _retained(client, where):
                continue
            client.put_object_retention(**where, Retention=retention)
            if _retained(client, where):
                locked += 1
            else:
                refused.append(version["Key"])
    return locked, refused
