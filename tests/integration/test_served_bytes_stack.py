"""Security review MEDIUM 2 on the loopback stack's real SeaweedFS: a tenant key's overwrite of a published
repository is not served.

As the attacker, the tenant's own key (which may write its prefix of `models`): promote publishes a
LightGBM model's Triton repository with it (components/steps/promote.py publish_repository); the
predictor's start (the runtime's command, tests/components/test_served_bytes.py `_start`) on what the
storage initializer would download, pinned to the sha256 promote renders into the InferenceService:
- positive control: promote's own publish starts;
- the forbidden path: the tenant's key PUTs a consistent forgery over the model file and config.pbtxt;
  the predictor refuses it (exit 2, naming `mlops verify` and `mc cp --version-id`);
- broken on purpose: with the check off the forgery loads and its sha256 is what the log would record;
- the recovery the refusal names: the registered versions copied back over the names (what
  `mc cp --version-id` does), and the predictor starts again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from components.environment import temporary_env
from components.errors import PERMANENT_EXIT_CODE
from components.platform import immutable
from components.steps.promote import publish_repository
from components.steps.triton_repository import write_repository
from devstack.stack import Stack
from devstack.tenants import get_tenant, tenant_environment
from tests.components.test_served_bytes import _pinned_env, _start
from tests.components.test_triton_formats import FEATURES, _lightgbm
from tests.conftest import REGISTRATION

pytestmark = pytest.mark.integration
TENANT = "fraud"  # a declared tenant (tests/integration/conftest.py tenants_stack)


def _download(client: Any, bucket: str, prefix: str, into: Path) -> Path:
    """What KServe's storage initializer does with the storageUri: every object under it, by name."""
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["Contents"]
    for item in listed:
        path = into / item["Key"].removeprefix(f"{prefix}/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return into


def test_a_tenant_key_overwrite_of_the_published_repository_is_not_served(
    lock_attack_stack: Stack, tmp_path: Path
) -> None:
    tenants_stack = lock_attack_stack
    tenant = get_tenant(tenants_stack, TENANT)
    admin, attacker = tenants_stack.s3_client(), tenants_stack.s3_client(tenant.access_key, tenant.secret_key)
    signed, forged = _lightgbm("binary"), _lightgbm("regression")
    registration: dict[str, Any] = dict(REGISTRATION) | {
        "model_name": "served-bytes-probe", "version": 3, "model_format": "lightgbm_text", "features": FEATURES,
        "objective": "binary", "artifact_sha256": hashlib.sha256(signed).hexdigest(),
    }  # fmt: skip
    serving_root = f"s3://{immutable.MODELS}/{tenant.name}/{tmp_path.name}"
    with temporary_env(tenant_environment(tenants_stack, tenant)):
        uri = publish_repository(registration, signed, serving_root, gpu=True)  # type: ignore[arg-type]
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    env = _pinned_env(registration)
    started = _start(_download(admin, bucket, prefix, tmp_path / "control"), env)
    assert started.returncode == 0, started.stderr  # positive control

    names = [f"{prefix}/served-bytes-probe/config.pbtxt", f"{prefix}/served-bytes-probe/3/model.txt"]
    registered = {key: admin.head_object(Bucket=bucket, Key=key)["VersionId"] for key in names}
    forgery = write_repository(tmp_path / "forgery", "served-bytes-probe", 3, "lightgbm_text", forged, FEATURES,
                               gpu=True, regression=True)  # fmt: skip
    for key, local in zip(names, [forgery / "config.pbtxt", forgery / "3" / "model.txt"], strict=True):
        attacker.put_object(Bucket=bucket, Key=key, Body=local.read_bytes())  # the tenant key's overwrite
    downloaded = _download(admin, bucket, prefix, tmp_path / "forged")
    refused = _start(downloaded, env)
    assert refused.returncode == PERMANENT_EXIT_CODE and not refused.stdout, refused
    assert "mlops verify served-bytes-probe" in refused.stderr and "mc cp --version-id" in refused.stderr
    forged_sha = hashlib.sha256(forged).hexdigest()
    assert _start(downloaded, env, check=False).stdout.split() == ["served", forged_sha, "logged", forged_sha]

    for key, version in registered.items():  # the restore the refusal names (mc cp --version-id)
        admin.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": version})
    restored = _start(_download(admin, bucket, prefix, tmp_path / "restored"), env)
    assert restored.returncode == 0, restored.stderr
