"""Issue 34 item 3 on the loopback stack's real SeaweedFS: a registered artifact outlives its tenant's key.

The registry and serving buckets (components/platform/immutable.py IMMUTABLE_BUCKETS) are versioned with
object lock and a GOVERNANCE default retention, put on by the devstack's start (`mlops buckets ensure`,
the cluster's bucket-setup Job, alike). As the attacker, the tenant's own key, which may write its
prefix of both buckets:
- positive control: the legitimate writers still work with it: MLflow logs a model artifact into the
  tenant's experiment (what `register` uploads) and promote publishes a serving repository
  (components/steps/promote.py), each object locked by the bucket's default retention;
- the forbidden paths: DeleteObject and DeleteObjects of the registered version, the bypass-governance
  header, a shorter retention, versioning suspended, the lock configuration replaced: each refused;
  an overwrite and a plain delete answer (a new version, a delete marker) and the registered version's
  bytes are still there, sha256 unchanged, and the admin restores them as the latest;
- broken on purpose: the same attack on `pipeline-artifacts`, a bucket left mutable: the bytes are lost.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from components.environment import temporary_env
from components.platform import buckets, immutable
from devstack.stack import Stack
from devstack.tenants import Tenant, get_tenant, tenant_environment
from tests.integration.conftest import mlops, platform_env

pytestmark = pytest.mark.integration
TENANT = "fraud"  # a declared tenant (tests/integration/conftest.py tenants_stack)
REGISTERED = b"registered model bytes: " + bytes(range(256)) * 64


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _version_body(client: Any, bucket: str, key: str, version: str) -> bytes:
    body: bytes = client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    return body


def _refused(call: Any, **kwargs: Any) -> str:
    """The S3 error code of a call that must be refused (a call that answers fails the test)."""
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return str(refused.value.response["Error"]["Code"])


def _registered_by_mlflow(stack: Stack, tenant: Tenant, folder: Path) -> tuple[str, str]:
    """The tenant's MLflow run logs a model file with the tenant's own key; (bucket, key) of it."""
    from mlflow import MlflowClient

    model = folder / "model.bin"
    model.write_bytes(REGISTERED)
    with temporary_env(tenant_environment(stack, tenant)):
        client = MlflowClient()
        experiment = client.get_experiment_by_name(tenant.name)
        assert experiment is not None
        run = client.create_run(experiment.experiment_id)
        client.log_artifact(run.info.run_id, str(model), "model")
        client.set_terminated(run.info.run_id)
        uri = f"{run.info.artifact_uri}/model/model.bin"
    assert uri.startswith(f"s3://{immutable.MLFLOW_ARTIFACTS}/{tenant.name}/"), uri
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _published_by_promote(stack: Stack, tenant: Tenant, folder: Path) -> tuple[str, str]:
    """promote's publish of a Triton repository with the tenant's own key; (bucket, key) of its model file."""
    from components.steps.promote import _publish

    repository = folder / "repository"
    (repository / "immutable-probe" / "1").mkdir(parents=True)
    (repository / "immutable-probe" / "config.pbtxt").write_text('name: "immutable-probe"\nbackend: "fil"\n')
    (repository / "immutable-probe" / "1" / "xgboost.json").write_bytes(REGISTERED)
    with temporary_env(tenant_environment(stack, tenant)):
        target = _publish(repository, f"s3://{immutable.MODELS}/{tenant.name}", "immutable-probe", 1, _sha(REGISTERED))
    bucket, _, prefix = target.removeprefix("s3://").partition("/")
    return bucket, f"{prefix}/immutable-probe/1/xgboost.json"


def _attack(attacker: Any, bucket: str, key: str, version: str) -> dict[str, str]:
    """Every way the tenant's key might remove or replace the registered version; each one's answer."""
    later = datetime.now(UTC) + timedelta(seconds=5)
    seen = {
        "delete version": _refused(attacker.delete_object, Bucket=bucket, Key=key, VersionId=version),
        "delete version, bypass governance": _refused(
            attacker.delete_object, Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
        ),
        "shorten retention": _refused(
            attacker.put_object_retention,
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={"Mode": immutable.RETENTION_MODE, "RetainUntilDate": later},
            BypassGovernanceRetention=True,
        ),
        "suspend versioning": _refused(
            attacker.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        ),
        "replace the lock configuration": _refused(
            attacker.put_object_lock_configuration,
            Bucket=bucket,
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"},
        ),
    }
    answer = attacker.delete_objects(
        Bucket=bucket, BypassGovernanceRetention=True, Delete={"Objects": [{"Key": key, "VersionId": version}]}
    )
    seen["multi-delete version"] = ",".join(error["Code"] for error in answer.get("Errors", [])) or "deleted"
    seen["overwrite"] = attacker.put_object(Bucket=bucket, Key=key, Body=b"forged")["VersionId"]
    seen["delete"] = str(attacker.delete_object(Bucket=bucket, Key=key).get("DeleteMarker"))
    return seen


@pytest.mark.parametrize("writer", [_registered_by_mlflow, _published_by_promote], ids=["mlflow", "promote"])
def test_a_tenant_key_cannot_delete_or_overwrite_a_registered_artifact(
    lock_attack_stack: Stack, tmp_path: Path, writer: Any
) -> None:
    tenants_stack = lock_attack_stack
    tenant = get_tenant(tenants_stack, TENANT)
    admin = tenants_stack.s3_client()
    attacker = tenants_stack.s3_client(tenant.access_key, tenant.secret_key)
    # positive control: the legitimate writer puts the artifact with the tenant's key, locked on arrival
    bucket, key = writer(tenants_stack, tenant, tmp_path)
    assert bucket in immutable.IMMUTABLE_BUCKETS and immutable.is_immutable(admin, bucket)
    version = admin.head_object(Bucket=bucket, Key=key)["VersionId"]
    retention = admin.get_object_retention(Bucket=bucket, Key=key, VersionId=version)["Retention"]
    assert retention["Mode"] == immutable.RETENTION_MODE
    assert retention["RetainUntilDate"] > datetime.now(UTC) + timedelta(days=immutable.RETENTION_DAYS - 1)
    assert _sha(attacker.get_object(Bucket=bucket, Key=key)["Body"].read()) == _sha(REGISTERED)

    seen = _attack(attacker, bucket, key, version)
    refusals = {path: code for path, code in seen.items() if path not in ("overwrite", "delete")}
    assert refusals == dict.fromkeys(refusals, "AccessDenied"), seen
    assert seen["overwrite"] != version and seen["delete"] == "True", seen  # a new version, a delete marker
    # the registered version survived all of it, byte for byte
    assert _sha(_version_body(admin, bucket, key, version)) == _sha(REGISTERED)
    assert immutable.is_immutable(admin, bucket)
    # the latest is gone (what `mlops verify` reports as MISSING) until the admin restores the version
    assert _refused(admin.get_object, Bucket=bucket, Key=key) == "NoSuchKey"
    admin.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": version})
    assert _sha(attacker.get_object(Bucket=bucket, Key=key)["Body"].read()) == _sha(REGISTERED)


def test_the_same_attack_on_a_mutable_bucket_loses_the_bytes(lock_attack_stack: Stack) -> None:
    """Broken on purpose: `pipeline-artifacts` is left mutable (not in IMMUTABLE_BUCKETS), as the registry
    buckets were before; the tenant key's overwrite and delete there leave no copy of the bytes."""
    tenants_stack = lock_attack_stack
    tenant = get_tenant(tenants_stack, TENANT)
    admin = tenants_stack.s3_client()
    attacker = tenants_stack.s3_client(tenant.access_key, tenant.secret_key)
    bucket, key = buckets.PIPELINE_ARTIFACTS, f"{TENANT}/immutable-control/{datetime.now(UTC).timestamp()}.bin"
    assert bucket not in immutable.IMMUTABLE_BUCKETS and not immutable.is_immutable(admin, bucket)
    attacker.put_object(Bucket=bucket, Key=key, Body=REGISTERED)
    attacker.put_object(Bucket=bucket, Key=key, Body=b"forged")
    assert attacker.get_object(Bucket=bucket, Key=key)["Body"].read() == b"forged"
    attacker.delete_object(Bucket=bucket, Key=key)
    kept = admin.list_object_versions(Bucket=bucket, Prefix=key)
    assert [version["Key"] for version in kept.get("Versions", [])] == []
    assert _refused(admin.get_object, Bucket=bucket, Key=key) == "NoSuchKey"


def test_ensure_makes_an_existing_bucket_immutable_and_is_idempotent(lock_attack_stack: Stack, tmp_path: Path) -> None:
    """An older stack's bucket, made plain: `lock` (what ensure does to IMMUTABLE_BUCKETS) adds versioning
    and the default retention, twice without harm; `mlops buckets ensure` (the bucket-setup Job's
    command), run again on the started stack, leaves exactly the registry buckets immutable."""
    tenants_stack = lock_attack_stack
    admin = tenants_stack.s3_client()
    plain = f"immutable-upgrade-{int(datetime.now(UTC).timestamp())}"
    admin.create_bucket(Bucket=plain)
    admin.put_object(Bucket=plain, Key="registered-before.bin", Body=REGISTERED)
    admin.put_object(Bucket=plain, Key="overwritten-after.bin", Body=REGISTERED)
    assert not immutable.is_immutable(admin, plain)
    immutable.lock(admin, plain)
    immutable.lock(admin, plain)
    assert immutable.is_immutable(admin, plain)
    admin.put_object(Bucket=plain, Key="overwritten-after.bin", Body=b"newer")  # locked; the older one is not
    # the default retention is for versions written after: the older ones are still deletable, until
    # lock_existing (`mlops buckets ensure --lock-existing`) gives them the retention, once
    before = {"Bucket": plain, "Key": "registered-before.bin"}
    assert not immutable._retained(admin, before)
    assert immutable.lock_existing(admin, plain) == (1, ["overwritten-after.bin"])  # SeaweedFS: see its doc
    assert immutable.lock_existing(admin, plain) == (0, ["overwritten-after.bin"])
    assert admin.get_object_retention(**before)["Retention"]["Mode"] == immutable.RETENTION_MODE
    assert _refused(admin.delete_object, **before, VersionId="null") == "AccessDenied"
    ensured = mlops(platform_env(tenants_stack, tmp_path), "buckets", "ensure", "--lock-existing")
    assert ensured.returncode == 0, ensured.stdout + ensured.stderr
    printed = json.loads(ensured.stdout)
    assert printed["buckets"] == list(buckets.BUCKETS)
    assert printed["object_lock"] == dict.fromkeys(immutable.IMMUTABLE_BUCKETS, immutable.OBJECT_LOCK)
    assert set(printed["locked_existing"]) == set(immutable.IMMUTABLE_BUCKETS), printed
    assert {bucket: immutable.is_immutable(admin, bucket) for bucket in buckets.BUCKETS} == {
        bucket: bucket in immutable.IMMUTABLE_BUCKETS for bucket in buckets.BUCKETS
    }


def test_what_seaweedfs_object_lock_does_for_the_admin(lock_attack_stack: Stack) -> None:
    """The rest of docs/recovery.md's table, on a scratch bucket of the admin's: GOVERNANCE gives way
    to the admin's bypass header (the deliberate removal), a legal hold and COMPLIANCE do not, and a
    retention given per object is kept."""
    tenants_stack = lock_attack_stack
    admin = tenants_stack.s3_client()
    scratch = f"immutable-probe-{int(datetime.now(UTC).timestamp())}"
    admin.create_bucket(Bucket=scratch, ObjectLockEnabledForBucket=True)
    assert admin.get_bucket_versioning(Bucket=scratch)["Status"] == "Enabled"  # object lock brings it
    immutable.lock(admin, scratch)
    held = admin.put_object(Bucket=scratch, Key="held", Body=b"held")["VersionId"]
    admin.put_object_legal_hold(Bucket=scratch, Key="held", VersionId=held, LegalHold={"Status": "ON"})
    bypass = {"Bucket": scratch, "Key": "held", "VersionId": held, "BypassGovernanceRetention": True}
    assert _refused(admin.delete_object, **bypass) == "AccessDenied"
    admin.put_object_legal_hold(Bucket=scratch, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
    assert _refused(admin.delete_object, Bucket=scratch, Key="held", VersionId=held) == "AccessDenied"
    admin.delete_object(**bypass)  # GOVERNANCE: the admin's bypass removes it, on purpose
    assert admin.list_object_versions(Bucket=scratch, Prefix="held").get("Versions", []) == []
    until = datetime.now(UTC) + timedelta(days=2)
    mode = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
    pinned = admin.put_object(Bucket=scratch, Key="pinned", Body=b"pinned", **mode)["VersionId"]
    retention = admin.get_object_retention(Bucket=scratch, Key="pinned", VersionId=pinned)["Retention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"] > until - timedelta(seconds=2)
    pin = {"Bucket": scratch, "Key": "pinned", "VersionId": pinned}
    assert _refused(admin.delete_object, **pin, BypassGovernanceRetention=True) == "AccessDenied"
    shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(seconds=5)}
    assert _refused(admin.put_object_retention, **pin, Retention=shorter) == "AccessDenied"
