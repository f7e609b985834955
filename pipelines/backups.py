"""The registry database's backups, declared once: CloudNativePG's WAL archive and nightly base backups
to the object store, and the recovery Cluster that restores them to a point in time (issue 34 item 1).

Why: the CNPG Cluster (manifests/base/postgres/) holds every registered version, alias, serving-history
entry and lineage record, and every tenant's Feast registry; without a backup a lost volume or a bad
migration loses them all. What is rendered here (`make golden` writes it beside cluster.yaml):
- `backup.yaml`, a patch of the Cluster: `spec.backup.barmanObjectStore` (WAL archived continuously,
  gzip-compressed, with PostgreSQL's archive_timeout of 5 minutes as CNPG sets it: the RPO) to
  s3://<BACKUPS>/ on the platform's object store (the same endpoint every pod's ConfigMap names,
  pipelines/cluster.cluster_settings), with its own credentials (BACKUP_SECRET, created out of band:
  manifests/out-of-band-secrets.yaml) and the retention below;
  The patch also turns on the operator's PodMonitor, so Prometheus reads the backup metrics
  (`cnpg_collector_last_available_backup_timestamp`) that PostgresBackupStale alerts on;
- `scheduled-backup.yaml`: a ScheduledBackup, nightly, owned by itself (`backupOwnerReference: self`),
  so the Backup objects it makes are collected with it, not with the Cluster.
`recovery_cluster` renders the Cluster a restore creates (`mlops restore-cluster`, docs/recovery.md):
`bootstrap.recovery` from an `externalClusters` entry naming the same object store and the live
archive (ARCHIVE_SERVER), to a `recoveryTarget.targetTime`. The restored Cluster archives under a new
server name (a new generation of the archive), because CNPG refuses to archive into a folder that
already holds another timeline's WAL ("Expected empty archive"); after a restore ARCHIVE_SERVER is set
to that name (docs/recovery.md), so the rendered Cluster keeps archiving where the restored one does.

The one source of the schedule and the retention is this module; the bucket's name is
components/platform/buckets.py's; the endpoint is cluster_settings'.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from components.platform.buckets import BACKUPS, S3_SECRET_KEYS
from pipelines.cluster import PLATFORM_NAMESPACE, POSTGRES_CLUSTER, POSTGRES_IMAGE, cluster_settings

__all__ = [
    "ARCHIVE_SERVER",
    "BACKUP_FILE",
    "BACKUP_SCHEDULE",
    "BACKUP_SECRET",
    "BACKUP_SECRET_KEYS",
    "RECOVERY_SOURCE",
    "RETENTION_POLICY",
    "SCHEDULED_BACKUP_FILE",
    "STALE_AFTER_HOURS",
    "WAL_COMPRESSION",
    "barman_object_store",
    "cluster_backup",
    "destination_path",
    "recovery_cluster",
    "scheduled_backup",
]

BACKUP_FILE = "backup.yaml"  # a patch of the Cluster (base/kustomization.yaml), beside roles.yaml
SCHEDULED_BACKUP_FILE = "scheduled-backup.yaml"
BACKUP_SCHEDULE = "0 0 2 * * *"
"""Nightly at 02:00 UTC. CNPG's schedule has a seconds field first (six fields), unlike a CronJob's."""
RETENTION_POLICY = "30d"
"""Base backups and WAL older than the oldest backup still needed for 30 days of recovery are removed."""
STALE_AFTER_HOURS = 26
"""PostgresBackupStale fires when no backup succeeded for this long: a nightly schedule plus slack."""
WAL_COMPRESSION = "gzip"
BACKUP_SECRET = "postgres-backup-s3-credentials"
"""The database's own S3 identity, granted the backup bucket only (never a tenant's key)."""
BACKUP_SECRET_KEYS = tuple(S3_SECRET_KEYS.values())
RECOVERY_SOURCE = "backup-source"
"""The externalClusters entry a recovery Cluster restores from."""
ARCHIVE_SERVER = POSTGRES_CLUSTER
"""The live generation of the archive: its folder under the bucket (barman's serverName). A restore
starts a new generation; set this to the name `mlops restore-cluster` archived under, then `make golden`."""


def destination_path() -> str:
    return f"s3://{BACKUPS}/"


def barman_object_store(server_name: str = ARCHIVE_SERVER) -> dict[str, Any]:
    """Where the archive is: the backup bucket on the platform's object store, the database's own key.
    `serverName` is the folder of one cluster's archive under the bucket."""
    access, secret = BACKUP_SECRET_KEYS
    return {
        "destinationPath": destination_path(),
        "endpointURL": cluster_settings().s3_endpoint,
        "serverName": server_name,
        "s3Credentials": {
            "accessKeyId": {"name": BACKUP_SECRET, "key": access},
            "secretAccessKey": {"name": BACKUP_SECRET, "key": secret},
        },
        "wal": {"compression": WAL_COMPRESSION, "maxParallel": 2},
        "data": {"compression": WAL_COMPRESSION, "jobs": 2},
    }


def cluster_backup() -> dict[str, Any]:
    """The patch of the platform's Cluster that turns on WAL archiving and base backups."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": POSTGRES_CLUSTER, "namespace": PLATFORM_NAMESPACE},
        "spec": {
            "backup": {"barmanObjectStore": barman_object_store(), "retentionPolicy": RETENTION_POLICY},
            # the operator's PodMonitor: Prometheus scrapes each instance's exporter (9187) for
            # cnpg_collector_last_available_backup_timestamp, which PostgresBackupStale reads
            "monitoring": {"enablePodMonitor": True},
        },
    }


def scheduled_backup() -> dict[str, Any]:
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": {
            "name": f"{POSTGRES_CLUSTER}-nightly",
            "namespace": PLATFORM_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "private-mlops"},
        },
        "spec": {
            "schedule": BACKUP_SCHEDULE,
            "backupOwnerReference": "self",
            "cluster": {"name": POSTGRES_CLUSTER},
            "method": "barmanObjectStore",
            "immediate": True,  # the first base backup at once: WAL alone restores nothing
        },
    }


def recovery_cluster(
    target_time: dt.datetime | None,
    *,
    name: str = POSTGRES_CLUSTER,
    archive_as: str = "",
    storage: str = "50Gi",
) -> dict[str, Any]:
    """A Cluster restored from the live archive (ARCHIVE_SERVER): to `target_time` (aware, rendered in UTC),
    or to the end of the archived WAL when it is None. By default it takes the platform Cluster's name, so
    its Services, PgBouncer, the NetworkPolicies and the roles patch apply to it unchanged; it archives as
    `archive_as` (default: `<name>-<UTC now, to the minute>`), never into the archive it restores from."""
    recovery: dict[str, Any] = {"source": RECOVERY_SOURCE}
    if target_time is not None:
        if target_time.tzinfo is None:
            raise ValueError("the target time needs a time zone (UTC: 2026-12-05T09:30:00+00:00)")
        stamp = target_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")  # RFC 3339
        recovery["recoveryTarget"] = {"targetTime": stamp}
    archive_as = archive_as or f"{name}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M}"
    if archive_as == ARCHIVE_SERVER:
        raise ValueError(f"the restored Cluster cannot archive into the archive it restores from ({ARCHIVE_SERVER})")
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": PLATFORM_NAMESPACE},
        "spec": {
            "instances": 1,
            "imageName": POSTGRES_IMAGE,
            "storage": {"size": storage},
            "bootstrap": {"recovery": recovery},
            "externalClusters": [{"name": RECOVERY_SOURCE, "barmanObjectStore": barman_object_store()}],
            "backup": {"barmanObjectStore": barman_object_store(archive_as), "retentionPolicy": RETENTION_POLICY},
        },
    }
