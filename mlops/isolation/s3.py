"""Isolation probes on the object store: every S3 call a tenant's key could stretch into another's prefix.

The target's object sits under `<target>/` in the shared `models` bucket; the attacker's key is
scoped to `<attacker>/`. Each probe tries one S3 operation (or a trick: a copy that reads through a
write, a `..` key, a presigned URL, the IAM API on the S3 port) and returns what leaked.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlparse

from mlops.isolation.outcomes import Denied
from mlops.isolation.scene import s3_client

if TYPE_CHECKING:
    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.scene import Scene

__all__ = ["LAST", "OWN", "PROBES", "listed"]

BUCKET = "models"


def own_objects(stack: Stack, tenant: Tenant) -> str:
    """Positive control: PUT, GET, LIST and DELETE in the tenant's own prefix."""
    s3 = s3_client(stack, tenant)
    key = f"{tenant.name}/isolation-control/{int(time.time())}.txt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"own bytes")
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{tenant.name}/isolation-control/").get("Contents", [])
    s3.delete_object(Bucket=BUCKET, Key=key)
    if body != b"own bytes" or not listed:
        raise RuntimeError(f"own object read back {body!r}, listing {len(listed)} keys")
    return "PUT, GET, LIST and DELETE in its own prefix"


def _denied(scene: Scene, reason: str, error: Exception | None = None) -> NoReturn:
    """Some refusals look alike for a denial and a bad signature (a bodiless HEAD 403, a
    presigned URL, a '..' key): the same attacker asking for a missing key of its own tells
    them apart (404 with working credentials)."""
    from botocore.exceptions import ClientError

    try:
        scene.s3.head_object(Bucket=BUCKET, Key=f"{scene.attacker.name}/isolation-probe-missing")
    except ClientError as own:
        if own.response.get("Error", {}).get("Code") != "404":
            refused = {"Code": "SignatureDoesNotMatch", "Message": "a request for its own key is refused too"}
            raise ClientError({"Error": refused}, "HeadObject") from error
    raise Denied(reason) from error


def get(scene: Scene) -> str:
    body = scene.s3.get_object(Bucket=BUCKET, Key=scene.planted["key"])["Body"].read()
    return f"read {len(body)} bytes of s3://models/{scene.planted['key']}"


def put(scene: Scene) -> str:
    scene.s3.put_object(Bucket=BUCKET, Key=f"{scene.prefix}planted-by-{scene.attacker.name}.txt", Body=b"x")
    return f"wrote into s3://models/{scene.prefix}"


def listed(what: str, keys: list[str], prefix: str) -> str:
    """A listing probe's verdict: DENIED when the listing shows none of the target's keys (those
    under its prefix), else what leaked. The one rule of the four listing probes."""
    seen = [key for key in keys if key.startswith(prefix)]
    if not seen:
        raise Denied(f"{what} returned nothing of the target's")
    return f"{what} listed {len(seen)} of the target's keys under s3://{BUCKET}/{prefix}"


def list_prefix(scene: Scene) -> str:
    listing = scene.s3.list_objects_v2(Bucket=BUCKET, Prefix=scene.prefix)
    return listed(
        "ListObjectsV2 of the target's prefix", [item["Key"] for item in listing.get("Contents", [])], scene.prefix
    )


def list_bucket(scene: Scene) -> str:
    pages = scene.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)  # every page, not the first 1,000
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return listed("ListObjectsV2 of the whole bucket", keys, scene.prefix)


def run_artifact(scene: Scene) -> str:
    artifact = urlparse(scene.planted["artifact"])
    body = scene.s3.get_object(Bucket=artifact.netloc, Key=artifact.path.lstrip("/"))["Body"].read()
    return f"downloaded the target's run artifact ({len(body)} bytes)"


def head(scene: Scene) -> str:
    from botocore.exceptions import ClientError

    try:
        answer = scene.s3.head_object(Bucket=BUCKET, Key=scene.planted["key"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "403":
            raise
        _denied(scene, "S3 403 (its own prefix answers HEAD)", error)
    return f"HEAD showed the target object's size ({answer['ContentLength']} bytes) and ETag"


def list_v1(scene: Scene) -> str:
    listing = scene.s3.list_objects(Bucket=BUCKET, Prefix=scene.prefix)
    return listed("ListObjects (v1)", [item["Key"] for item in listing.get("Contents", [])], scene.prefix)


def list_versions(scene: Scene) -> str:
    listing = scene.s3.list_object_versions(Bucket=BUCKET, Prefix=scene.prefix)
    keys = [item["Key"] for item in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]
    return listed("ListObjectVersions", keys, scene.prefix)


def copy_out(scene: Scene) -> str:
    """CopyObject into A's own prefix, with B's object as the source: a read through a write."""
    copy = f"{scene.attacker.name}/isolation-copied-from-{scene.target.name}.txt"
    scene.s3.copy_object(Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": scene.planted["key"]})
    body = scene.s3.get_object(Bucket=BUCKET, Key=copy)["Body"].read()
    scene.s3.delete_object(Bucket=BUCKET, Key=copy)
    return f"copied the target's object into its own prefix ({len(body)} bytes)"


def upload_part_copy(scene: Scene) -> str:
    copy = f"{scene.attacker.name}/isolation-part-copied-from-{scene.target.name}.txt"
    upload = scene.s3.create_multipart_upload(Bucket=BUCKET, Key=copy)["UploadId"]
    try:
        part = scene.s3.upload_part_copy(
            Bucket=BUCKET,
            Key=copy,
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": BUCKET, "Key": scene.planted["key"]},
        )
    finally:
        scene.s3.abort_multipart_upload(Bucket=BUCKET, Key=copy, UploadId=upload)
    return f"UploadPartCopy read the target's object into a part ({part['CopyPartResult'].get('ETag')})"


def multipart_into(scene: Scene) -> str:
    key = f"{scene.prefix}multipart-by-{scene.attacker.name}.txt"
    upload = scene.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etag = scene.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
    parts = {"Parts": [{"ETag": etag, "PartNumber": 1}]}
    scene.s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload=parts)
    return f"completed a multipart upload into s3://models/{key}"


def dot_dot(scene: Scene) -> str:
    """Keys that climb out of A's prefix: read B's object, and write next to it."""
    from botocore.exceptions import ClientError

    refusals = ("NoSuchKey", "AccessDenied", "403", "404", "InvalidRequest", "InvalidArgument", "InvalidObjectName")
    attacker, target = scene.attacker.name, scene.target.name
    climbing = f"{attacker}/../{scene.planted['key']}"
    try:
        body = scene.s3.get_object(Bucket=BUCKET, Key=climbing)["Body"].read()
        return f"GET {climbing!r} returned the target's object ({len(body)} bytes)"
    except ClientError as error:
        if error.response.get("Error", {}).get("Code", "") not in refusals:
            raise
    written = f"{attacker}/../{target}/dot-dot-by-{attacker}.txt"
    try:
        scene.s3.put_object(Bucket=BUCKET, Key=written, Body=b"x")
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in refusals:
            _denied(scene, f"the server refused keys with '..' ({code})", error)
        raise
    landed = s3_client(scene.stack, scene.target).list_objects_v2(Bucket=BUCKET, Prefix=f"{target}/dot-dot-by-")
    scene.s3.delete_object(Bucket=BUCKET, Key=written)
    if landed.get("Contents"):
        return f"PUT {written!r} landed in the target's prefix"
    _denied(scene, "the climbing key stayed a literal key under the attacker's own prefix")


def presigned(scene: Scene) -> str:
    import requests

    params = {"Bucket": BUCKET, "Key": scene.planted["key"]}
    url = scene.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    response = requests.get(url, timeout=10)
    if response.status_code == 200:
        return f"a URL presigned with the attacker's key fetched the target's object ({len(response.content)} bytes)"
    _denied(scene, f"the presigned URL answered HTTP {response.status_code}")


def iam_users(scene: Scene) -> str:
    """SeaweedFS serves an IAM API on the S3 port: users and their access keys."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    attacker, target = scene.attacker, scene.target
    iam = scene.stack.s3_client(attacker.access_key, attacker.secret_key, service="iam")
    try:
        keys = iam.list_access_keys(UserName=target.name)["AccessKeyMetadata"]
    except ClientError as error:
        _denied(scene, f"the IAM API refused ({error.response['ResponseMetadata']['HTTPStatusCode']})", error)
    except ResponseParserError as error:  # no IAM API on this port: the S3 server's own answer
        _denied(scene, "no IAM API on the S3 port", error)
    if any(key.get("UserName") == target.name for key in keys):
        return f"the IAM API listed the target's access key ids ({len(keys)})"
    _denied(scene, "the IAM API answered without the target's keys")


def _still_there(scene: Scene) -> list[Any]:
    target = s3_client(scene.stack, scene.target)
    contents: list[Any] = target.list_objects_v2(Bucket=BUCKET, Prefix=scene.planted["key"]).get("Contents", [])
    return contents


def multi_delete(scene: Scene) -> str:
    answer = scene.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": scene.planted["key"]}]})
    if _still_there(scene):
        codes = sorted({error.get("Code", "") for error in answer.get("Errors", [])})
        raise Denied(f"multi-delete left the object in place ({', '.join(codes) or 'no error reported'})")
    return f"multi-delete removed s3://models/{scene.planted['key']}"


def delete(scene: Scene) -> str:
    scene.s3.delete_object(Bucket=BUCKET, Key=scene.planted["key"])
    if _still_there(scene):
        raise Denied("delete answered but the object is still there")
    return f"deleted s3://models/{scene.planted['key']}"


OWN = (("own: s3 objects in own prefix", own_objects),)
PROBES = (
    ("s3 GET target object", get),
    ("s3 PUT into target prefix", put),
    ("s3 LIST target prefix", list_prefix),
    ("s3 LIST whole bucket", list_bucket),
    ("s3 GET target run artifact", run_artifact),
    ("s3 HEAD target object", head),
    ("s3 LIST v1 target prefix", list_v1),
    ("s3 LIST object versions", list_versions),
    ("s3 COPY target object out", copy_out),
    ("s3 UploadPartCopy from target", upload_part_copy),
    ("s3 multipart upload into target prefix", multipart_into),
    ("s3 ../ keys across prefixes", dot_dot),
    ("s3 presigned GET target object", presigned),
    ("s3 IAM API: the target's access keys", iam_users),
)
LAST = (  # destructive: run after every other surface, since a leak here removes what they look at
    ("s3 multi-delete target object", multi_delete),
    ("s3 DELETE target object", delete),
)
