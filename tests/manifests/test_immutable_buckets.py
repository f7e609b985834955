"""Issue 34 item 3 in the cluster's manifests: the buckets that hold registered models and serving
repositories are the ones the bucket-setup Job makes versioned with object lock.

The Job runs `mlops buckets ensure` (components/platform/buckets.py) against MinIO with the root
user; the buckets it locks are components/platform/immutable.py IMMUTABLE_BUCKETS. Here: every
artifact root and serving root the rendered manifests name (MLflow's `--default-artifact-root`, each
ConfigMap's MLOPS_MLFLOW_ARTIFACT_ROOT and MLOPS_SERVING_ROOT) is in one of those buckets, and what
`ensure` asks of an S3 store is right for MinIO (object lock at creation, then versioning and the
default retention), checked against botocore's own S3 model with its Stubber. The same calls on the
real SeaweedFS: tests/integration/test_immutable_artifacts.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.errors import ComponentError
from components.platform import buckets, immutable
from pipelines.tenancy import load as load_tenants
from tests.conftest import REPO
from tests.rendered_manifests import render

MANIFESTS = REPO / "manifests"
ROOTS = ("MLOPS_MLFLOW_ARTIFACT_ROOT", "MLOPS_SERVING_ROOT")


@pytest.fixture(scope="module")
def rendered(schemas_dir: Path) -> dict[str, list[dict[str, Any]]]:
    folders = {name: MANIFESTS / "overlays" / name for name in ("dev", "prod")}
    folders.update({name: MANIFESTS / "tenants" / name for name in load_tenants(MANIFESTS).names})
    return {name: render(folder) for name, folder in folders.items()}


def _roots(objects: list[dict[str, Any]]) -> list[str]:
    """Every s3:// root an object names for registered artifacts or serving repositories."""
    found = []
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            found += [obj["data"][name] for name in ROOTS if name in obj.get("data", {})]
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            found += [
                arg.split("=", 1)[1] for arg in container.get("args", []) if arg.startswith("--default-artifact-root=")
            ]
    return found


def test_every_registry_and_serving_root_is_in_an_immutable_bucket(rendered: dict[str, list[dict[str, Any]]]) -> None:
    seen: dict[str, set[str]] = {}
    for name, objects in rendered.items():
        for root in _roots(objects):
            assert root.startswith("s3://"), (name, root)
            seen.setdefault(root.removeprefix("s3://").split("/", 1)[0], set()).add(name)
    assert set(seen) == set(immutable.IMMUTABLE_BUCKETS), seen  # both found, each one locked
    assert all(len(names) == len(rendered) for names in seen.values()), seen  # every overlay and tenant
    for objects in (rendered["dev"], rendered["prod"]):
        (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "bucket-setup"]
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["mlops", "buckets", "ensure"]


def _client() -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url="http://minio.invalid:9000", region_name="us-east-1",
        aws_access_key_id="stub", aws_secret_access_key="stub",
    )  # fmt: skip


def test_ensure_creates_the_registry_buckets_with_object_lock_and_retention() -> None:
    """A fresh MinIO: every bucket missing. The immutable ones are created with object lock (MinIO
    adds it at creation only), then versioning and OBJECT_LOCK's default retention are put on and
    read back; the others are created plain. Each call's parameters checked against the S3 model."""
    from botocore.stub import Stubber

    client = _client()
    with Stubber(client) as stub:
        for bucket in buckets.BUCKETS:
            stub.add_client_error("head_bucket", "404", http_status_code=404, expected_params={"Bucket": bucket})
            locked = bucket in immutable.IMMUTABLE_BUCKETS
            created = {"Bucket": bucket, "ObjectLockEnabledForBucket": True} if locked else {"Bucket": bucket}
            stub.add_response("create_bucket", {}, created)
            if locked:
                versioning = {"Bucket": bucket, "VersioningConfiguration": {"Status": "Enabled"}}
                stub.add_response("put_bucket_versioning", {}, versioning)
                lock = {"Bucket": bucket, "ObjectLockConfiguration": immutable.OBJECT_LOCK}
                stub.add_response("put_object_lock_configuration", {}, lock)
                stub.add_response("get_bucket_versioning", {"Status": "Enabled"}, {"Bucket": bucket})
                answer = {"ObjectLockConfiguration": immutable.OBJECT_LOCK}
                stub.add_response("get_object_lock_configuration", answer, {"Bucket": bucket})
            lifecycle = {"Bucket": bucket, "LifecycleConfiguration": buckets.LIFECYCLE}
            stub.add_response("put_bucket_lifecycle_configuration", {}, lifecycle)
        assert buckets.ensure(client) == list(buckets.BUCKETS)
        stub.assert_no_pending_responses()


def test_a_store_that_refuses_object_lock_on_an_existing_bucket_is_a_clear_error() -> None:
    """An existing MinIO bucket made without object lock: MinIO refuses to add it. `ensure` stops
    with the bucket named and the migration to do, not with a bucket left mutable."""
    from botocore.stub import Stubber

    client = _client()
    with Stubber(client) as stub:
        stub.add_response("put_bucket_versioning", {})
        message = "Object Lock configuration cannot be enabled on existing buckets"
        stub.add_client_error("put_object_lock_configuration", "InvalidBucketState", message, 409)
        with pytest.raises(ComponentError, match="refused versioning or object lock on bucket 'models'") as refused:
            immutable.lock(client, immutable.MODELS)
    assert "InvalidBucketState" in refused.value.problem and "mc mirror" in refused.value.fix
    assert "mlops buckets ensure" in refused.value.fix and refused.value.exit_code == 2


def test_a_bucket_without_the_retention_is_not_immutable() -> None:
    """is_immutable (what the integration test and the broken-on-purpose control read) on a versioned
    bucket with object lock but no default retention, and on one without object lock: both False."""
    from botocore.stub import Stubber

    client = _client()
    with Stubber(client) as stub:
        stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
        stub.add_response(
            "get_object_lock_configuration", {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}
        )
        assert not immutable.is_immutable(client, "models")
        stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
        stub.add_client_error(
            "get_object_lock_configuration", "ObjectLockConfigurationNotFoundError", http_status_code=404
        )
        assert not immutable.is_immutable(client, "models")
        stub.add_response("get_bucket_versioning", {})
        assert not immutable.is_immutable(client, "models")


def _lock_actions_granted(policy: dict[str, Any]) -> list[str]:
    """Each of LOCK_ACTIONS a policy allows, wildcards (`s3:*`, `s3:Put*`) matched as IAM matches them:
    case-insensitively, an Action given as one string or a list, and an Allow with NotAction granting
    every action it does not name (security review LOW 7: this once matched case-sensitively and
    ignored NotAction)."""
    from fnmatch import fnmatchcase

    def names(value: str | list[str]) -> list[str]:
        return [value.lower()] if isinstance(value, str) else [item.lower() for item in value]

    def matches(lock: str, patterns: list[str]) -> bool:
        return any(fnmatchcase(lock.lower(), pattern) for pattern in patterns)

    granted: set[str] = set()
    for statement in (s for s in policy["Statement"] if s["Effect"] == "Allow"):
        if "NotAction" in statement:
            excluded = names(statement["NotAction"])
            granted |= {lock for lock in immutable.LOCK_ACTIONS if not matches(lock, excluded)}
        else:
            allowed = names(statement.get("Action", []))
            granted |= {lock for lock in immutable.LOCK_ACTIONS if matches(lock, allowed)}
    return sorted(granted)


def test_no_tenant_key_may_undo_the_lock() -> None:
    """The cluster's tenant keys (the MinIO policy the platform team creates from
    components/platform/tenant_s3.py) grant none of LOCK_ACTIONS, and the loopback tenants' SeaweedFS
    identities have no `Admin` (the class that holds them there). Broken on purpose: a policy widened
    to `s3:*` on the tenant's prefix is seen granting every one of them."""
    from components.platform.tenant_s3 import minio_policy
    from devstack.tenants import s3_actions

    for name in load_tenants(MANIFESTS).names:
        policy = minio_policy(name)
        assert _lock_actions_granted(policy) == [], name
        assert not any(action.startswith("Admin") for action in s3_actions(name)), name
        widened = {**policy, "Statement": [*policy["Statement"], {"Effect": "Allow", "Action": ["s3:*"]}]}
        assert _lock_actions_granted(widened) == sorted(immutable.LOCK_ACTIONS)


def test_the_lock_check_reads_iam_actions_case_insensitively_and_sees_not_action() -> None:
    """Security review LOW 7: IAM action names are case-insensitive and an Allow with NotAction grants
    everything it does not name. A tenant policy widened either way is seen granting the lock actions;
    the shipped policy (the control) grants none; a NotAction naming every lock action grants none."""
    from components.platform.tenant_s3 import minio_policy

    policy = minio_policy(load_tenants(MANIFESTS).names[0])
    assert _lock_actions_granted(policy) == []  # positive control

    def widened(statement: dict[str, Any]) -> dict[str, Any]:
        return {**policy, "Statement": [*policy["Statement"], {"Effect": "Allow", **statement}]}

    lock = sorted(immutable.LOCK_ACTIONS)[0]
    assert _lock_actions_granted(widened({"Action": lock.upper()})) == [lock]
    assert _lock_actions_granted(widened({"Action": ["S3:*"]})) == sorted(immutable.LOCK_ACTIONS)
    assert _lock_actions_granted(widened({"NotAction": ["s3:GetObject"]})) == sorted(immutable.LOCK_ACTIONS)
    assert _lock_actions_granted(widened({"NotAction": [a.upper() for a in immutable.LOCK_ACTIONS]})) == []
