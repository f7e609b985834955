"""The registry database's backups (issue 34 item 1): the CNPG Cluster's barmanObjectStore and the nightly
ScheduledBackup as every overlay renders them, the recovery Cluster a restore creates, each validated by
mlops lint's own checker against the CNPG CRDs in $MLOPS_SCHEMAS_DIR; the names they share derived from
one place each; and no tenant's S3 identity reaching the backup bucket."""

from __future__ import annotations

import copy
import datetime as dt
import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.platform.buckets import BACKUPS, BUCKETS, TENANT_BUCKETS
from pipelines import backups
from pipelines.cluster import POSTGRES_CLUSTER, cluster_settings
from tests.conftest import REPO
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"


@pytest.fixture(scope="module")
def overlays(schemas_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: render(MANIFESTS / "overlays" / name) for name in ("dev", "prod")}


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_every_overlay_archives_the_cluster_to_the_backup_bucket_and_backs_it_up_nightly(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    from mlops.lint import check

    for name, objects in overlays.items():
        cluster = _one(objects, "Cluster", POSTGRES_CLUSTER)
        backup = cluster["spec"]["backup"]
        store = backup["barmanObjectStore"]
        assert store["destinationPath"] == f"s3://{BACKUPS}/", name
        assert store["endpointURL"] == cluster_settings().s3_endpoint  # where every pod reaches the store
        assert store["wal"]["compression"] == "gzip" and store["serverName"] == POSTGRES_CLUSTER
        credentials = store["s3Credentials"]
        assert {credentials["accessKeyId"]["name"], credentials["secretAccessKey"]["name"]} == {backups.BACKUP_SECRET}
        assert backup["retentionPolicy"] == backups.RETENTION_POLICY
        assert cluster["spec"]["managed"]["roles"] and cluster["spec"]["bootstrap"]["initdb"]  # merged, not replaced
        scheduled = _one(objects, "ScheduledBackup", f"{POSTGRES_CLUSTER}-nightly")["spec"]
        assert scheduled["cluster"] == {"name": POSTGRES_CLUSTER} and scheduled["method"] == "barmanObjectStore"
        assert scheduled["backupOwnerReference"] == "self" and scheduled["schedule"] == backups.BACKUP_SCHEDULE
        assert len(scheduled["schedule"].split()) == 6  # CNPG's cron has seconds first: nightly, not every minute
        for obj in (cluster, _one(objects, "ScheduledBackup", f"{POSTGRES_CLUSTER}-nightly")):
            assert check(obj) is None, (name, obj["kind"], check(obj))


def test_the_crd_check_refuses_a_wrong_backup(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """The negative controls: the same checker refuses a bad retention, a misspelt field, an unknown owner."""
    from mlops.lint import check

    cluster = _one(overlays["prod"], "Cluster", POSTGRES_CLUSTER)
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["backup"]["retentionPolicy"] = "30 days"
    assert "retentionPolicy" in str(check(wrong))
    wrong = copy.deepcopy(cluster)
    wrong["spec"]["backup"]["barmanObjectStore"]["walCompression"] = "gzip"
    assert "walCompression" in str(check(wrong))
    scheduled = copy.deepcopy(_one(overlays["prod"], "ScheduledBackup", f"{POSTGRES_CLUSTER}-nightly"))
    scheduled["spec"]["backupOwnerReference"] = "me"
    assert "backupOwnerReference" in str(check(scheduled))


def test_the_generated_files_are_the_renderers_output() -> None:
    folder = MANIFESTS / "base" / "postgres"
    assert yaml.safe_load((folder / backups.BACKUP_FILE).read_text()) == backups.cluster_backup()
    assert yaml.safe_load((folder / backups.SCHEDULED_BACKUP_FILE).read_text()) == backups.scheduled_backup()
    kustomization = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())
    assert f"postgres/{backups.SCHEDULED_BACKUP_FILE}" in kustomization["resources"]
    assert {"path": f"postgres/{backups.BACKUP_FILE}"} in kustomization["patches"]


def test_the_recovery_cluster_restores_the_same_archive_to_a_point_in_time(schemas_dir: Path) -> None:
    from mlops.lint import check

    when = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    restored = backups.recovery_cluster(when)
    assert check(restored) is None, check(restored)
    spec = restored["spec"]
    recovery = spec["bootstrap"]["recovery"]
    assert recovery["recoveryTarget"] == {"targetTime": "2026-12-05T08:30:00Z"}  # in UTC
    source = next(c for c in spec["externalClusters"] if c["name"] == recovery["source"])
    assert source["barmanObjectStore"] == backups.cluster_backup()["spec"]["backup"]["barmanObjectStore"]
    assert source["barmanObjectStore"]["serverName"] == backups.ARCHIVE_SERVER  # the live generation
    # it takes the platform's name (its Services, PgBouncer, policies, roles apply) and archives as a new
    # generation: CNPG refuses a destination holding another timeline's WAL
    assert restored["metadata"]["name"] == POSTGRES_CLUSTER
    archived = spec["backup"]["barmanObjectStore"]["serverName"]
    assert archived.startswith(f"{POSTGRES_CLUSTER}-") and archived != backups.ARCHIVE_SERVER
    assert backups.recovery_cluster(when, archive_as="g2")["spec"]["backup"]["barmanObjectStore"]["serverName"] == "g2"
    assert "recoveryTarget" not in backups.recovery_cluster(None)["spec"]["bootstrap"]["recovery"]  # latest
    with pytest.raises(ValueError, match="time zone"):
        backups.recovery_cluster(dt.datetime(2026, 12, 5, 9, 30))
    with pytest.raises(ValueError, match="cannot archive into the archive it restores from"):
        backups.recovery_cluster(when, archive_as=backups.ARCHIVE_SERVER)
    wrong = copy.deepcopy(restored)
    wrong["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["targetTimestamp"] = "x"
    assert "targetTimestamp" in str(check(wrong))


def test_the_backup_secret_is_created_out_of_band_with_the_keys_the_cluster_reads() -> None:
    rows = yaml.safe_load((MANIFESTS / "out-of-band-secrets.yaml").read_text())["secrets"]
    row = next(r for r in rows if r["name"] == backups.BACKUP_SECRET)
    assert row["namespace"] == "mlops" and tuple(row["keys"]) == backups.BACKUP_SECRET_KEYS
    store = backups.barman_object_store()["s3Credentials"]
    assert (store["accessKeyId"]["key"], store["secretAccessKey"]["key"]) == backups.BACKUP_SECRET_KEYS


def _granted(actions: list[str], verb: str, key: str) -> bool:
    """Whether SeaweedFS's identity actions allow `verb` on `bucket/key`: `<Verb>:<bucket>/<prefix>/*`
    under the prefix, `<Verb>:<bucket>` (no slash) the whole bucket."""
    patterns = [action if "/" in action else f"{action}/*" for action in actions]
    return any(fnmatch.fnmatchcase(f"{verb}:{key}", pattern) for pattern in patterns)


def test_no_tenant_key_reaches_the_backup_bucket() -> None:
    """The backup bucket is created with the others but is no tenant's: neither a tenant's own prefix in
    it nor, broadened on purpose (the isolation check's control), the whole bucket."""
    from devstack.tenants import s3_actions

    assert BACKUPS in BUCKETS and BACKUPS not in TENANT_BUCKETS
    for tenant in ("fraud", "pricing"):
        for broadened in (False, True):
            actions = s3_actions(tenant, broadened=broadened)
            for verb in ("Read", "Write", "List"):
                assert not _granted(actions, verb, f"{BACKUPS}/{tenant}/base/x.tar"), (tenant, broadened, verb)
                assert not _granted(actions, verb, f"{BACKUPS}/{POSTGRES_CLUSTER}/wals/0001"), (tenant, verb)
        # positive control: the same matcher grants the tenant its own prefix of a tenant bucket
        assert _granted(s3_actions(tenant), "Write", f"models/{tenant}/fraud-detector/v1/config.pbtxt")
        assert not _granted(s3_actions(tenant), "Write", "models/other/fraud-detector/v1/config.pbtxt")


def test_the_backup_alert_reads_cnpgs_backup_metric_at_the_declared_staleness() -> None:
    """PostgresBackupStale reads the exporter the Cluster's PodMonitor scrapes, at STALE_AFTER_HOURS; its
    promtool case (tests/monitoring/prometheus-rules.test.yaml, "recovery") shows it quiet and firing."""
    rules = yaml.safe_load((MANIFESTS / "monitoring" / "prometheus-rules.yaml").read_text())
    expr = {rule["alert"]: rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    stale = expr["PostgresBackupStale"]
    assert "cnpg_collector_last_available_backup_timestamp{" in stale and 'namespace="mlops"' in stale
    assert stale.endswith(f"> {backups.STALE_AFTER_HOURS} * 3600")
    assert backups.cluster_backup()["spec"]["monitoring"] == {"enablePodMonitor": True}


def test_the_restore_command_docs_recovery_gives_prints_a_valid_recovery_cluster(
    schemas_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/recovery.md's `mlops restore-cluster` line, run as written (without its redirection), prints the
    recovery Cluster: valid against the CRD, to the documented time, from the live archive."""
    import shlex

    from mlops.cli import main
    from mlops.lint import check

    text = (REPO / "docs" / "recovery.md").read_text()
    [line] = [line.strip() for line in text.splitlines() if line.strip().startswith("mlops restore-cluster")]
    argv = shlex.split(line.split(" > ")[0])[1:]
    capsys.readouterr()
    assert main(argv) == 0
    restored = yaml.safe_load(capsys.readouterr().out)
    assert check(restored) is None, check(restored)
    target = argv[argv.index("--to") + 1]
    expected = dt.datetime.fromisoformat(target).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert restored["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["targetTime"] == expected
    assert restored["spec"]["externalClusters"][0]["barmanObjectStore"]["serverName"] == backups.ARCHIVE_SERVER
    assert restored["spec"]["storage"] == {"size": argv[argv.index("--storage") + 1]}
    assert main(["restore-cluster", "--to", "2026-12-05T09:30"]) == 2  # no zone: refused, nothing printed
    assert capsys.readouterr().out == ""


def test_the_recovery_cluster_runs_what_the_platform_cluster_runs(overlays: dict[str, list[dict[str, Any]]]) -> None:
    """The image of the Cluster it replaces; the base's volume size by default, an overlay's when given, and
    docs/recovery.md's command gives prod's."""
    import shlex

    base = yaml.safe_load((MANIFESTS / "base" / "postgres" / "cluster.yaml").read_text())["spec"]
    restored = backups.recovery_cluster(None)["spec"]
    assert restored["imageName"] == base["imageName"] and restored["storage"] == base["storage"]
    for objects in overlays.values():
        live = _one(objects, "Cluster", POSTGRES_CLUSTER)["spec"]
        sized = backups.recovery_cluster(None, storage=live["storage"]["size"])["spec"]
        assert sized["imageName"] == live["imageName"] and sized["storage"] == live["storage"]
    text = (REPO / "docs" / "recovery.md").read_text()
    [line] = [line.strip() for line in text.splitlines() if line.strip().startswith("mlops restore-cluster")]
    argv = shlex.split(line.split(" > ")[0])
    prod = _one(overlays["prod"], "Cluster", POSTGRES_CLUSTER)["spec"]["storage"]["size"]
    assert argv[argv.index("--storage") + 1] == prod
