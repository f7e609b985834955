"""The registry database's backup bucket on a real SeaweedFS (issue 34 item 1): created with the platform's
buckets, and refused to a tenant's key derived exactly as the devstack derives it (devstack/tenants.py
s3_actions over components/platform/buckets.py TENANT_BUCKETS), while the same key writes its own prefix
of a tenant bucket (the positive control) and a key granted the bucket writes it."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from components.platform.buckets import BACKUPS
from devstack import process
from devstack.stack import PORT_SPAN, Ports, Stack
from devstack.tenants import S3_ACTIONS, s3_actions


def _identity(name: str, actions: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "credentials": [{"accessKey": f"{name}-{secrets.token_hex(4)}", "secretKey": secrets.token_urlsafe(18)}],
        "actions": actions,
    }


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[Stack, dict[str, dict[str, Any]]]]:
    root = Path(tempfile.mkdtemp(prefix="mlops-backup-bucket-"))
    root.chmod(0o755)
    stack = Stack(root=root, ports=Ports.from_base(process.free_port_base(PORT_SPAN)))
    identities = {
        "fraud": _identity("fraud", s3_actions("fraud")),
        "broadened": _identity("pricing", s3_actions("pricing", broadened=True)),
        "backup": _identity("postgres-backup", [f"{action}:{BACKUPS}" for action in S3_ACTIONS]),
    }
    stack.folder("s3").mkdir(parents=True)
    document = {"identities": [*stack.s3_identities(), *identities.values()]}
    process.write_private(stack.folder("s3") / "s3.json", json.dumps(document))
    try:
        stack.up(("s3",))
        yield stack, identities
    finally:
        stack.down(("s3",))
        shutil.rmtree(root, ignore_errors=True)


def _client(stack: Stack, identity: dict[str, Any]) -> Any:
    [credentials] = identity["credentials"]
    return stack.s3_client(credentials["accessKey"], credentials["secretKey"])


def _refused(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return False


@pytest.mark.integration
def test_a_tenant_key_is_refused_on_the_backup_bucket(s3: tuple[Stack, dict[str, dict[str, Any]]]) -> None:
    stack, identities = s3
    base = "mlops-postgres/base/20261205T020000/data.tar"
    backup, fraud, broadened = (_client(stack, identities[name]) for name in ("backup", "fraud", "broadened"))
    stack.s3_client().head_bucket(Bucket=BACKUPS)  # created with the platform's buckets
    backup.put_object(Bucket=BACKUPS, Key=base, Body=b"base")
    fraud.put_object(Bucket="models", Key="fraud/fraud-detector/v1/config.pbtxt", Body=b"ok")
    for client in (fraud, broadened):
        calls = [
            partial(client.put_object, Bucket=BACKUPS, Key="fraud/x", Body=b"x"),
            partial(client.put_object, Bucket=BACKUPS, Key="mlops-postgres/wals/0001", Body=b"x"),
            partial(client.get_object, Bucket=BACKUPS, Key=base),
            partial(client.list_objects_v2, Bucket=BACKUPS),
            partial(client.delete_object, Bucket=BACKUPS, Key=base),
        ]
        assert [_refused(call) for call in calls] == [True] * len(calls)
    # the backup's own key reads back what it wrote: the refusals above are the policy, not a broken bucket
    body = backup.get_object(Bucket=BACKUPS, Key=base)["Body"].read()
    assert body == b"base"
    assert not _refused(partial(backup.list_objects_v2, Bucket=BACKUPS))


@pytest.mark.integration
def test_mlops_verify_tells_a_refusal_from_a_missing_object(s3: tuple[Stack, dict[str, dict[str, Any]]]) -> None:
    """mlops/verify.py's `refused`, on the store's own answers: a tenant key on the backup bucket is a
    refusal (a dataset it may not read is NOT READABLE, not MISSING); a key that does not exist is not."""
    from mlops.verify import refused

    stack, identities = s3
    fraud = _client(stack, identities["fraud"])
    with pytest.raises(ClientError) as denied:
        fraud.head_object(Bucket=BACKUPS, Key="mlops-postgres/base/x")
    with pytest.raises(ClientError) as missing:
        fraud.head_object(Bucket="models", Key="fraud/no-such-object")
    assert refused(denied.value) and not refused(missing.value)
