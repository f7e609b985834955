"""The platform's buckets and their lifecycle, declared once: the devstack applies them at start and
the cluster's `bucket-setup` Job (manifests/base/object-store) runs `mlops buckets ensure`. The
registry and serving buckets are versioned with object lock (components/platform/immutable.py).

The one rule: incomplete multipart uploads are aborted a day after they start. A writer killed
mid-upload leaves its parts stored and billed but invisible; the next writer of the same key
aborts them (components/artifacts.py), and this rule catches the keys nobody writes again.
No rule expires an object: the decision log (`decisions`, each tenant's keys under <namespace>/,
components/serving/decision_record.py) is what an audit, a complaint or a regulator asks for
years later, so a bank keeps it; an expiry is its own decision, never a default here.

One bucket is not a tenant's: `postgres-backups`, where CloudNativePG archives the registry's WAL
and base backups (pipelines/backups.py). Only the database's own backup identity writes it, so it is
in BUCKETS (created and given the lifecycle like the others) but not in TENANT_BUCKETS, the buckets
a tenant's S3 identity is scoped into (devstack/tenants.py s3_actions; the cluster's tenant keys alike).
"""

from __future__ import annotations

from typing import Any

from components.platform import immutable
from components.platform.immutable import IMMUTABLE_BUCKETS, MLFLOW_ARTIFACTS, MODELS

__all__ = [
    "ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS",
    "BACKUPS",
    "BUCKETS",
    "DECISIONS",
    "LIFECYCLE",
    "PIPELINE_ARTIFACTS",
    "S3_SECRET_KEYS",
    "TENANT_BUCKETS",
    "ensure",
    "has_lifecycle",
]

DECISIONS = "decisions"
"""The decision log's bucket (components/serving/decision_record.py writes it); named here, where
the compiler reads the bucket list, so compiling imports no pyarrow."""
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "access-key", "AWS_SECRET_ACCESS_KEY": "secret-key"}
"""Every S3 identity's Secret holds its key under these keys (a tenant's, the decisions writer's, the
database's backups'), read into these variables; manifests/out-of-band-secrets.yaml documents them."""
PIPELINE_ARTIFACTS = "pipeline-artifacts"
"""Argo's artifact repository (each tenant's keys under <namespace>/); a TrainJob's nodes read and
write their handed-over files there too (pipelines/argo.py)."""
BACKUPS = "postgres-backups"
"""The registry database's WAL archive and base backups (the CNPG Cluster's barmanObjectStore,
pipelines/backups.py): written by the database's backup identity only, never by a tenant's key."""
TENANT_BUCKETS = (MLFLOW_ARTIFACTS, MODELS, PIPELINE_ARTIFACTS, "feast-offline", DECISIONS)
"""Every tenant's S3 identity is scoped to `<bucket>/<namespace>/*` in each of these (devstack/tenants.py;
the cluster's tenant keys alike): the transformer writes the decision log under its own prefix only."""
BUCKETS = (*TENANT_BUCKETS, BACKUPS)
"""Every bucket of the platform: what the devstack and `mlops buckets ensure` create."""
ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS = 1
LIFECYCLE: dict[str, Any] = {
    "Rules": [
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS},
        }
    ]
}


def ensure(client: Any, buckets: tuple[str, ...] = BUCKETS) -> list[str]:
    """Create what is missing and put the lifecycle on every bucket (idempotent); returns the buckets.
    IMMUTABLE_BUCKETS are created with object lock, and versioning and the default retention are put
    on them every time, so a bucket an older stack made is brought up to it."""
    from botocore.exceptions import ClientError

    for bucket in buckets:
        locked = bucket in IMMUTABLE_BUCKETS
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            if locked:
                immutable.create(client, bucket)  # MinIO adds object lock at creation only
            else:
                client.create_bucket(Bucket=bucket)
        if locked:
            immutable.lock(client, bucket)
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=LIFECYCLE)
    return list(buckets)


def has_lifecycle(client: Any, bucket: str) -> bool:
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    return any(
        rule.get("Status") == "Enabled"
        and rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
        == ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS
        for rule in rules
    )
