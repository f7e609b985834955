"""Isolation probes on the decision log (issue 32): each tenant's transformer writes it under
`decisions/<namespace>/` with the tenant's decisions writer, and no tenant reads, lists or writes
another's, nor rewrites its own.

A decision names a customer's entity, its features and the model's verdict: another tenant reading
it is a data leak, writing into it forges an audit trail. The log is also the tenant's own evidence
of which model decided what, so the tenant's key may read and list its log but write only its late
outcomes beside it (`_outcomes/`, components/platform/tenant_s3.py tenant_grants); a tenant that could
put, overwrite or delete its own decision files could rewrite what an auditor reads.

The control does what a tenant legitimately does: its transformer's writer logs a decision file, its
own key reads it back (`mlops audit`) and writes an outcomes file beside the log through pyarrow's S3
client (`mlops outcomes ingest`). The probes try the target's file the seed planted (`scene.seed`, at
decision_record.file_key's layout), its prefix and the whole bucket; then, with the attacker's own
key on its own log (a file its writer put there), a new forged file, an overwrite, a delete, a
multi-delete and a multipart upload. `tests/integration/test_tenancy.py` broadens one tenant's policy,
and gives one back the old Write on its whole log, and sees these rows LEAK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from components.platform.tenant_s3 import tenant_write_prefix
from components.serving.decision_record import BUCKET, file_key, prefix
from mlops.isolation.decisions_writer import writer_s3
from mlops.isolation.s3 import listed
from mlops.isolation.scene import s3_client

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["OWN", "PROBES", "planted_key"]

PROBE_MODEL = "isolation-probe"
FORGERY_MODEL = "isolation-self-forgery"
ORIGINAL, FORGED = b"decisions as the transformer logged them", b"forged decisions"


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def planted_key(namespace: str) -> str:
    """Where the seed plants the target's decision file: a batch of a model no pipeline has."""
    return file_key(namespace, PROBE_MODEL, "1", _today(), part=str(int(time.time())))


def _unique_key(namespace: str, model: str, what: str) -> str:
    return file_key(namespace, model, "1", _today(), part=f"{what}-{time.time_ns()}")


def own_decisions(stack: Stack, tenant: Tenant) -> str:
    """Positive control: the tenant's writer logs a decision file, the tenant's key reads and lists it
    and writes, reads and deletes an outcomes file beside the log (pyarrow, as `mlops outcomes ingest`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.environment import temporary_env
    from components.platform.outcomes import outcomes_root
    from components.serving.decision_log import open_destination

    own, writer = s3_client(stack, tenant), writer_s3(stack, tenant)
    key = _unique_key(tenant.name, "isolation-control", "control")
    writer.put_object(Bucket=BUCKET, Key=key, Body=ORIGINAL)
    try:
        body = own.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        listing = own.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    finally:
        writer.delete_object(Bucket=BUCKET, Key=key)
    if body != ORIGINAL or not listing:
        raise RuntimeError(f"own decision file read back {body!r}, listing {len(listing)} keys")
    env = {"AWS_ACCESS_KEY_ID": tenant.access_key, "AWS_SECRET_ACCESS_KEY": tenant.secret_key}
    with temporary_env({**env, "AWS_ENDPOINT_URL": stack.s3_endpoint}):
        filesystem, root = open_destination(outcomes_root(f"s3://{BUCKET}/{prefix(tenant.name)}"))
        outcome = f"{root}/model=isolation-control/version=1/date={_today()}/part-{time.time_ns()}.parquet"
        pq.write_table(pa.table({"decision_id": ["control"], "label": [1]}), outcome, filesystem=filesystem)
    written = outcome.removeprefix(f"{BUCKET}/")
    size = own.head_object(Bucket=BUCKET, Key=written)["ContentLength"]
    own.delete_object(Bucket=BUCKET, Key=written)
    return f"its writer's decision file read and listed, a {size}-byte outcomes file written at s3://{outcome}"


def get(scene: Scene) -> str:
    body = scene.s3.get_object(Bucket=BUCKET, Key=scene.planted["decisions"])["Body"].read()
    return f"read {len(body)} bytes of the target's decisions s3://{BUCKET}/{scene.planted['decisions']}"


def put(scene: Scene) -> str:
    key = f"{prefix(scene.target.name)}forged-by-{scene.attacker.name}.parquet"
    scene.s3.put_object(Bucket=BUCKET, Key=key, Body=FORGED)
    writer_s3(scene.stack, scene.target).delete_object(Bucket=BUCKET, Key=key)  # the owner's key reads only
    return f"wrote a forged decision file into s3://{BUCKET}/{key}"


def list_prefix(scene: Scene) -> str:
    target = prefix(scene.target.name)
    keys = [item["Key"] for item in scene.s3.list_objects_v2(Bucket=BUCKET, Prefix=target).get("Contents", [])]
    return _listed("ListObjectsV2 of the target's decisions", keys, target)


def list_bucket(scene: Scene) -> str:
    pages = scene.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return _listed("ListObjectsV2 of the whole decisions bucket", keys, prefix(scene.target.name))


def _listed(what: str, keys: list[str], target: str) -> str:
    """s3.listed's one rule (Denied when none of the target's keys shows), naming this bucket."""
    return listed(what, keys, target).replace("s3://models/", f"s3://{BUCKET}/")


@contextmanager
def _own_log_file(scene: Scene, what: str, planted: bool = True) -> Iterator[str]:
    """A key in the attacker's own decision log (not under `_outcomes/`), its file put by the
    attacker's decisions writer as its transformer does when `planted`; the writer removes whatever is
    there after."""
    key = _unique_key(scene.attacker.name, FORGERY_MODEL, what)
    if key.startswith(tenant_write_prefix(BUCKET, scene.attacker.name)):
        raise RuntimeError(f"{key} is where the tenant may write: the probe would prove nothing")
    writer = writer_s3(scene.stack, scene.attacker)
    if planted:
        writer.put_object(Bucket=BUCKET, Key=key, Body=ORIGINAL)
    try:
        yield key
    finally:
        writer.delete_object(Bucket=BUCKET, Key=key)


def forges_a_decision(scene: Scene) -> str:
    """PUT a decision file of its own making into its own log, with the tenant's key."""
    with _own_log_file(scene, "new", planted=False) as key:
        scene.s3.put_object(Bucket=BUCKET, Key=key, Body=FORGED)
        return f"the tenant's key wrote a forged decision file into its own log s3://{BUCKET}/{key}"


def overwrites_a_decision(scene: Scene) -> str:
    """PUT over a decision file its transformer logged, then read what an auditor would read."""
    with _own_log_file(scene, "overwrite") as key:
        scene.s3.put_object(Bucket=BUCKET, Key=key, Body=FORGED)
        body = scene.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return f"the tenant's key overwrote its logged decisions s3://{BUCKET}/{key}: it now reads {body!r}"


def _gone(scene: Scene, key: str, call: Callable[[], Any], how: str) -> str:
    """A delete answered: LEAK if the logged file is gone, an error if it answered yet kept it."""
    from botocore.exceptions import ClientError

    call()
    try:
        scene.s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey"):
            return f"the tenant's key {how} its logged decisions s3://{BUCKET}/{key}"
        # the delete itself answered: a refused HEAD after it says nothing about the delete (ERROR, not DENIED)
        problem = f"{how} answered, then its HEAD failed ({code}), which proves nothing: s3://{BUCKET}/{key}"
        raise RuntimeError(problem) from error
    raise RuntimeError(f"{how} answered without an error, yet s3://{BUCKET}/{key} is still there")


def deletes_a_decision(scene: Scene) -> str:
    with _own_log_file(scene, "delete") as key:
        return _gone(scene, key, lambda: scene.s3.delete_object(Bucket=BUCKET, Key=key), "deleted")


def multi_deletes_a_decision(scene: Scene) -> str:
    """DeleteObjects answers 200 with per-key errors: a key it could not delete is a refusal."""
    from mlops.isolation.outcomes import Denied

    def delete() -> None:
        answer = scene.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key}]})
        if answer.get("Errors"):
            code = answer["Errors"][0].get("Code")
            if code == "AccessDenied":  # a refusal; InternalError, SlowDown and the rest prove nothing
                raise Denied(f"DeleteObjects refused it: {code}")
            raise RuntimeError(f"DeleteObjects failed on it without refusing it: {code}")

    with _own_log_file(scene, "multi-delete") as key:
        return _gone(scene, key, delete, "multi-deleted")


def uploads_a_decision_in_parts(scene: Scene) -> str:
    """A multipart upload into its own log: its own authorization path in the server."""
    with _own_log_file(scene, "multipart", planted=False) as key:
        upload = scene.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        try:
            part = scene.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=FORGED)
            parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
            scene.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload=parts)
        except Exception:
            writer_s3(scene.stack, scene.attacker).abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload)
            raise
        return f"the tenant's key uploaded a forged decision file in parts into its own log s3://{BUCKET}/{key}"


OWN = (("own: decision log in own prefix", own_decisions),)
PROBES = (
    ("decisions GET target decision file", get),
    ("decisions PUT into target prefix", put),
    ("decisions LIST target prefix", list_prefix),
    ("decisions LIST whole bucket", list_bucket),
    ("decisions own key PUT a forged decision into own log", forges_a_decision),
    ("decisions own key overwrites own logged decision", overwrites_a_decision),
    ("decisions own key DELETE own logged decision", deletes_a_decision),
    ("decisions own key multi-delete own logged decision", multi_deletes_a_decision),
    ("decisions own key multipart upload into own log", uploads_a_decision_in_parts),
)
