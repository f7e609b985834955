"""Isolation probes of the scoring transformer's decision-log key: the tenant's decisions writer (issue 32).

The transformer answers requests, so whoever subverts it holds its credentials. Its S3 key is the
tenant's decisions writer (devstack/tenants.py; the cluster's tenant-decisions-credentials,
components/steps/serving_decisions.py), not the tenant's own key, which may write the tenant's prefix
of every bucket: with that one a subverted transformer could overwrite a registered model. The
control writes a Parquet file under the attacker's own decisions prefix the way the transformer does
(pyarrow's S3 client, components/serving/decision_log.py open_destination); the probes try, with the
same key, the attacker's own models and model artifacts, another tenant's decisions, the attacker's
training data and its own decisions read back. A tenant added before the writer existed has none
(`mlops tenant add <name>` again gives it one): its control fails, and the rows prove nothing (ERROR).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from components.platform.buckets import DECISIONS
from mlops.isolation.scene import s3_client

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["MISSING_KEY", "OWN", "PROBES", "writer_s3"]

MISSING_KEY = "no-decisions-writer"
"""Signs for a tenant without a writer: the server refuses it (InvalidAccessKeyId, an ERROR), where an
empty key would make the stack's client fall back to the platform's admin key."""


def writer_s3(stack: Stack, tenant: Tenant) -> Any:
    """A boto3 S3 client signing with the tenant's decisions writer."""
    return stack.s3_client(tenant.decisions_access_key or MISSING_KEY, tenant.decisions_secret_key or MISSING_KEY)


def _key(tenant: Tenant, what: str) -> str:
    return f"{tenant.name}/isolation-decisions-writer/{what}-{int(time.time() * 1000)}"


def writes_its_decision_log(stack: Stack, tenant: Tenant) -> str:
    """Positive control: a Parquet file under `decisions/<tenant>/` through the transformer's own
    destination (open_destination with the writer's key), found there by the tenant's own key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.environment import temporary_env
    from components.serving.decision_log import open_destination

    env = {
        "AWS_ACCESS_KEY_ID": tenant.decisions_access_key or MISSING_KEY,
        "AWS_SECRET_ACCESS_KEY": tenant.decisions_secret_key or MISSING_KEY,
        "AWS_ENDPOINT_URL": stack.s3_endpoint,
    }
    key = f"{_key(tenant, 'control')}.parquet"
    with temporary_env(env):
        filesystem, root = open_destination(f"s3://{DECISIONS}/")
        pq.write_table(pa.table({"decision": [1]}), f"{root}/{key}", filesystem=filesystem)
    try:
        size = s3_client(stack, tenant).head_object(Bucket=DECISIONS, Key=key)["ContentLength"]
    finally:  # the tenant's own key only reads its log (components/platform/tenant_s3.py tenant_grants)
        writer_s3(stack, tenant).delete_object(Bucket=DECISIONS, Key=key)
    return f"wrote a {size}-byte Parquet file to s3://{DECISIONS}/{key} as {tenant.name}'s decisions writer"


def _put(scene: Scene, bucket: str, prefix: str, what: str) -> str:
    """PUT with the attacker's writer; a LEAK is removed again with the owner's key (in `decisions`,
    the owner's writer: the tenant's own key only reads its log)."""
    key = f"{prefix}forged-by-{scene.attacker.name}-decisions-writer-{int(time.time() * 1000)}"
    writer_s3(scene.stack, scene.attacker).put_object(Bucket=bucket, Key=key, Body=b"forged")
    owner = scene.target if prefix.startswith(f"{scene.target.name}/") else scene.attacker
    remover = writer_s3 if bucket == DECISIONS else s3_client
    remover(scene.stack, owner).delete_object(Bucket=bucket, Key=key)
    return f"the transformer's decision-log key wrote {what} s3://{bucket}/{key}"


def writes_its_models(scene: Scene) -> str:
    return _put(scene, "models", f"{scene.attacker.name}/", "into its tenant's serving repository")


def writes_its_model_artifacts(scene: Scene) -> str:
    return _put(scene, "mlflow-artifacts", f"{scene.attacker.name}/", "into its tenant's registered model bytes")


def writes_its_pipeline_artifacts(scene: Scene) -> str:
    return _put(scene, "pipeline-artifacts", f"{scene.attacker.name}/", "into its tenant's pipeline artifacts")


def writes_another_tenants_decisions(scene: Scene) -> str:
    return _put(scene, DECISIONS, f"{scene.target.name}/", "a forged decision file into another tenant's log")


def reads_its_training_data(scene: Scene) -> str:
    """GET an object the attacker's own key puts in its feast-offline prefix, with its writer."""
    key = f"{_key(scene.attacker, 'training')}.parquet"
    own = s3_client(scene.stack, scene.attacker)
    own.put_object(Bucket="feast-offline", Key=key, Body=b"training rows")
    try:
        body = writer_s3(scene.stack, scene.attacker).get_object(Bucket="feast-offline", Key=key)["Body"].read()
    finally:
        own.delete_object(Bucket="feast-offline", Key=key)
    return f"the transformer's decision-log key read its tenant's training data ({len(body)} bytes)"


def reads_its_decisions(scene: Scene) -> str:
    """GET a decision file of its own tenant's, one it put itself: the writer only puts, so a
    subverted transformer cannot read back the customers' past decisions."""
    key = f"{_key(scene.attacker, 'written')}.parquet"
    writer = writer_s3(scene.stack, scene.attacker)
    writer.put_object(Bucket=DECISIONS, Key=key, Body=b"past decisions")
    try:
        body = writer.get_object(Bucket=DECISIONS, Key=key)["Body"].read()
    finally:
        writer.delete_object(Bucket=DECISIONS, Key=key)
    return f"the transformer's decision-log key read back its tenant's decisions ({len(body)} bytes)"


OWN = (("own: decisions writer writes its decision log", writes_its_decision_log),)
PROBES = (
    ("decisions writer PUT into its models", writes_its_models),
    ("decisions writer PUT into its model artifacts", writes_its_model_artifacts),
    ("decisions writer PUT into its pipeline artifacts", writes_its_pipeline_artifacts),
    ("decisions writer PUT into target decisions", writes_another_tenants_decisions),
    ("decisions writer GET its training data", reads_its_training_data),
    ("decisions writer GET its own decisions", reads_its_decisions),
)
