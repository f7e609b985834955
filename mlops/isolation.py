"""`mlops isolation-check --as A --target B`: try every path a curious member of A has into B.

First, as B, it leaves something to find: an object under B's S3 prefixes, a run with an
artifact in B's experiment, a registered model with an alias, a table in B's schema, a key in
B's online store (Redis). Then, as
A, with A's own credentials only, it tries to read, list, write and delete each of them. Each
path is DENIED (refused, or filtered out of a listing) or LEAK (A saw or changed B's data);
an attempt that fails for another reason is ERROR, which proves nothing and fails the check.

Positive controls come first: A reads and writes its own data on every surface (OK). An
authentication failure is never DENIED: with broken credentials every path would be refused,
and a check that counted that as isolation would pass without testing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

DENIED, LEAK, ERROR, OK = "DENIED", "LEAK", "ERROR", "OK"
AUTHENTICATION_FAILED = "authentication failed: the attacker's own credentials do not work, so this proves nothing"


@dataclass(frozen=True)
class Attempt:
    path: str
    expected: str
    observed: str
    detail: str


class Denied(Exception):
    """The service refused: the outcome isolation wants."""


def _s3(stack: Any, tenant: Any) -> Any:
    return stack.s3_client(tenant.access_key, tenant.secret_key)


def _as(tenant: Any) -> Any:
    """The tenant's MLflow identity for a block (MLflow reads basic-auth credentials per request)."""
    from components.environment import temporary_env

    return temporary_env({"MLFLOW_TRACKING_USERNAME": tenant.name, "MLFLOW_TRACKING_PASSWORD": tenant.password})


def _mlflow(stack: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)


def _redis(stack: Any, tenant: Any, on: Any = None, *, username: str | None = None) -> Any:
    """A client of `on`'s Redis (default: the tenant's own) with the tenant's user and password."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    store = on or tenant
    return redis.Redis(
        retry=Retry(NoBackoff(), 0),  # a refused login is an answer, not an outage to wait out
        host="127.0.0.1",
        port=store.redis_port,
        username=tenant.name if username is None else username or None,
        password=tenant.password if username != "" else None,
        socket_connect_timeout=2,
        socket_timeout=5,
    )


def _redis_key(project: str) -> bytes:
    """A key shaped like Feast's (serialized entity key + project), for an entity no pipeline uses."""
    return b"isolation-probe-entity" + project.encode()


def _offline(tenant: Any) -> str:
    from devstack.tenants import offline_database

    return offline_database(tenant.name)


def _pg(stack: Any, tenant: Any, database: str) -> Any:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1",
        port=stack.ports.postgres,
        dbname=database,
        user=tenant.name,
        password=tenant.password,
        connect_timeout=3,
        autocommit=True,
    )


def seed(stack: Any, target: Any) -> dict[str, Any]:
    """As the target: something in each place, for the attacker to look for."""
    from urllib.parse import urlparse

    probe = f"isolation-probe/{int(time.time())}.txt"
    key = f"{target.name}/{probe}"
    _s3(stack, target).put_object(Bucket="models", Key=key, Body=b"target's model bytes")
    client = _mlflow(stack)
    experiment = client.get_experiment_by_name(target.name)
    if experiment is None:
        raise RuntimeError(f"tenant {target.name} has no experiment; run `mlops tenant add {target.name}`")
    run = client.create_run(experiment.experiment_id, tags={"isolation": "probe"})
    # Direct mode: the client writes the artifact to S3 itself (MLflow caches its boto3 client
    # with the first credentials it saw, so write with the target's own client).
    location = urlparse(f"{run.info.artifact_uri}/weights.bin")
    _s3(stack, target).put_object(Bucket=location.netloc, Key=location.path.lstrip("/"), Body=b"target's weights")
    client.set_terminated(run.info.run_id)
    model = f"{target.name}-probe"
    try:
        client.create_registered_model(model)
    except Exception as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    version = client.create_model_version(model, source=f"{run.info.artifact_uri}/weights.bin", run_id=run.info.run_id)
    client.set_registered_model_alias(model, "champion", version.version)
    with _pg(stack, target, _offline(target)) as connection:
        connection.execute(f"create table if not exists {target.name}.probe (secret text)")
        connection.execute(f"insert into {target.name}.probe values ('target row')")
    _redis(stack, target).hset(_redis_key(target.name), mapping={"_ts:probe": b"target's timestamp"})
    return {
        "key": key,
        "run_id": run.info.run_id,
        "artifact": f"{run.info.artifact_uri}/weights.bin",
        "experiment_id": experiment.experiment_id,
        "model": model,
        "version": version.version,
    }


def _attempt(path: str, call: Callable[[], str]) -> Attempt:
    """Run one probe: it returns a LEAK's description, or raises; classify the raise."""
    import redis
    from botocore.exceptions import ClientError
    from mlflow.exceptions import MlflowException

    try:
        leak = call()
    except Denied as denied:
        return Attempt(path, DENIED, DENIED, str(denied))
    except redis.exceptions.AuthenticationError as error:
        return Attempt(path, DENIED, ERROR, f"Redis {str(error)[:60]}: {AUTHENTICATION_FAILED}")
    except redis.exceptions.NoPermissionError as error:
        return Attempt(path, DENIED, DENIED, f"Redis {str(error)[:100]}")
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return Attempt(path, DENIED, ERROR, f"S3 {code}: {AUTHENTICATION_FAILED}")
        if code in ("AccessDenied", "403", "Forbidden"):
            return Attempt(path, DENIED, DENIED, f"S3 {code}")
        return Attempt(path, DENIED, ERROR, f"S3 {code}: {error}")
    except MlflowException as error:
        text = str(error)
        if "UNAUTHENTICATED" in text or "401" in text:
            return Attempt(path, DENIED, ERROR, f"MLflow 401: {AUTHENTICATION_FAILED}")
        if "PERMISSION_DENIED" in text or "403" in text or "Permission denied" in text:
            return Attempt(path, DENIED, DENIED, "MLflow 403 PERMISSION_DENIED")
        return Attempt(path, DENIED, ERROR, f"MLflow: {text[:160]}")
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        if "password authentication failed" in text.lower():
            return Attempt(path, DENIED, ERROR, f"PostgreSQL: {AUTHENTICATION_FAILED}")
        if "permission denied" in text.lower():
            return Attempt(path, DENIED, DENIED, f"PostgreSQL: {text[:160]}")
        return Attempt(path, DENIED, ERROR, f"{type(error).__name__}: {text[:160]}")
    return Attempt(path, DENIED, LEAK, leak)


def controls(stack: Any, tenant: Any) -> list[Attempt]:
    """Positive controls: the tenant uses its own data on every surface the probes attack."""
    s3 = _s3(stack, tenant)
    key = f"{tenant.name}/isolation-control/{int(time.time())}.txt"

    def s3_own() -> str:
        s3.put_object(Bucket="models", Key=key, Body=b"own bytes")
        body = s3.get_object(Bucket="models", Key=key)["Body"].read()
        listed = s3.list_objects_v2(Bucket="models", Prefix=f"{tenant.name}/isolation-control/").get("Contents", [])
        s3.delete_object(Bucket="models", Key=key)
        if body != b"own bytes" or not listed:
            raise RuntimeError(f"own object read back {body!r}, listing {len(listed)} keys")
        return "PUT, GET, LIST and DELETE in its own prefix"

    def mlflow_own() -> str:
        client = _mlflow(stack)
        experiment = client.get_experiment_by_name(tenant.name)
        if experiment is None:
            raise RuntimeError(f"its own experiment {tenant.name} is not visible")
        run = client.create_run(experiment.experiment_id, tags={"isolation": "control"})
        client.log_metric(run.info.run_id, "control", 1.0)
        client.delete_run(run.info.run_id)
        return f"created, logged to and deleted a run in experiment {tenant.name}"

    def postgres_own() -> str:
        with _pg(stack, tenant, _offline(tenant)) as connection:
            connection.execute(f"create table if not exists {tenant.name}.isolation_control (x int)")
            connection.execute(f"select count(*) from {tenant.name}.isolation_control")
        return f"created and read a table in schema {tenant.name}"

    def feast_own() -> str:
        with _pg(stack, tenant, f"feast_{tenant.name}") as connection:
            connection.execute("select 1")
        return f"connected to its Feast registry database feast_{tenant.name}"

    def redis_own() -> str:
        client = _redis(stack, tenant)
        key = _redis_key(tenant.name) + b"-control"
        client.hset(key, mapping={"_ts:control": b"1"})
        read = client.hget(key, "_ts:control")
        client.delete(key)
        if read != b"1":
            raise RuntimeError(f"own key read back {read!r}")
        return f"HSET, HGET and DEL in its own online store (127.0.0.1:{tenant.redis_port})"

    attempts = []
    with _as(tenant):
        for path, call in (
            ("own: s3 objects in own prefix", s3_own),
            ("own: redis own online store", redis_own),
            ("own: mlflow runs in own experiment", mlflow_own),
            ("own: postgres own schema", postgres_own),
            ("own: feast own registry db", feast_own),
        ):
            attempted = _attempt(path, call)
            observed = OK if attempted.observed == LEAK else ERROR  # a control's success reads as "got in"
            detail = attempted.detail if observed == OK else f"{attempted.detail} (the control failed)"
            attempts.append(Attempt(path, OK, observed, detail))
    return attempts


def check(stack: Any, attacker: Any, target: Any) -> list[Attempt]:
    """The positive controls, then every probe; a row passes when observed == expected."""
    from urllib.parse import urlparse

    own = controls(stack, attacker)
    with _as(target):
        planted = seed(stack, target)
    s3 = _s3(stack, attacker)
    mlflow = _mlflow(stack)
    prefix = f"{target.name}/"
    artifact = urlparse(planted["artifact"])

    def s3_get() -> str:
        body = s3.get_object(Bucket="models", Key=planted["key"])["Body"].read()
        return f"read {len(body)} bytes of s3://models/{planted['key']}"

    def s3_put() -> str:
        s3.put_object(Bucket="models", Key=f"{prefix}planted-by-{attacker.name}.txt", Body=b"x")
        return f"wrote into s3://models/{prefix}"

    def s3_list() -> str:
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="models", Prefix=prefix).get("Contents", [])]
        if not keys:
            raise Denied("listing returned nothing of the target's")
        return f"listed {len(keys)} keys under s3://models/{prefix}"

    def s3_list_bucket() -> str:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="models")  # every page, not the first 1,000
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        seen = [key for key in keys if key.startswith(prefix)]
        if not seen:
            raise Denied("the bucket listing shows none of the target's keys")
        return f"bucket listing shows {len(seen)} of the target's keys"

    def s3_delete() -> str:
        s3.delete_object(Bucket="models", Key=planted["key"])
        head = _s3(stack, target).list_objects_v2(Bucket="models", Prefix=planted["key"]).get("Contents", [])
        if head:
            raise Denied("delete answered but the object is still there")
        return f"deleted s3://models/{planted['key']}"

    def s3_denied(reason: str, error: Exception | None = None) -> NoReturn:
        """Some refusals look alike for a denial and a bad signature (a bodiless HEAD 403, a
        presigned URL, a '..' key): the same attacker asking for a missing key of its own tells
        them apart (404 with working credentials)."""
        from botocore.exceptions import ClientError

        try:
            s3.head_object(Bucket="models", Key=f"{attacker.name}/isolation-probe-missing")
        except ClientError as own:
            if own.response.get("Error", {}).get("Code") != "404":
                refused = {"Code": "SignatureDoesNotMatch", "Message": "a request for its own key is refused too"}
                raise ClientError({"Error": refused}, "HeadObject") from error
        raise Denied(reason) from error

    def s3_head() -> str:
        from botocore.exceptions import ClientError

        try:
            head = s3.head_object(Bucket="models", Key=planted["key"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "403":
                raise
            s3_denied("S3 403 (its own prefix answers HEAD)", error)
        return f"HEAD showed the target object's size ({head['ContentLength']} bytes) and ETag"

    def s3_list_v1() -> str:
        keys = [item["Key"] for item in s3.list_objects(Bucket="models", Prefix=prefix).get("Contents", [])]
        if not keys:
            raise Denied("ListObjects (v1) returned nothing of the target's")
        return f"ListObjects (v1) listed {len(keys)} of the target's keys"

    def s3_list_versions() -> str:
        listed = s3.list_object_versions(Bucket="models", Prefix=prefix)
        keys = [item["Key"] for item in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
        if not keys:
            raise Denied("ListObjectVersions returned nothing of the target's")
        return f"ListObjectVersions listed {len(keys)} of the target's keys"

    def s3_copy_out() -> str:
        """CopyObject into A's own prefix, with B's object as the source: a read through a write."""
        copy = f"{attacker.name}/isolation-copied-from-{target.name}.txt"
        s3.copy_object(Bucket="models", Key=copy, CopySource={"Bucket": "models", "Key": planted["key"]})
        body = s3.get_object(Bucket="models", Key=copy)["Body"].read()
        s3.delete_object(Bucket="models", Key=copy)
        return f"copied the target's object into its own prefix ({len(body)} bytes)"

    def s3_upload_part_copy() -> str:
        copy = f"{attacker.name}/isolation-part-copied-from-{target.name}.txt"
        upload = s3.create_multipart_upload(Bucket="models", Key=copy)["UploadId"]
        try:
            part = s3.upload_part_copy(
                Bucket="models",
                Key=copy,
                UploadId=upload,
                PartNumber=1,
                CopySource={"Bucket": "models", "Key": planted["key"]},
            )
        finally:
            s3.abort_multipart_upload(Bucket="models", Key=copy, UploadId=upload)
        return f"UploadPartCopy read the target's object into a part ({part['CopyPartResult'].get('ETag')})"

    def s3_multipart_into() -> str:
        key = f"{prefix}multipart-by-{attacker.name}.txt"
        upload = s3.create_multipart_upload(Bucket="models", Key=key)["UploadId"]
        etag = s3.upload_part(Bucket="models", Key=key, UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
        parts = {"Parts": [{"ETag": etag, "PartNumber": 1}]}
        s3.complete_multipart_upload(Bucket="models", Key=key, UploadId=upload, MultipartUpload=parts)
        return f"completed a multipart upload into s3://models/{key}"

    def s3_dot_dot() -> str:
        """Keys that climb out of A's prefix: read B's object, and write next to it."""
        from botocore.exceptions import ClientError

        refusals = ("NoSuchKey", "AccessDenied", "403", "404", "InvalidRequest", "InvalidArgument", "InvalidObjectName")
        climbing = f"{attacker.name}/../{planted['key']}"
        try:
            body = s3.get_object(Bucket="models", Key=climbing)["Body"].read()
            return f"GET {climbing!r} returned the target's object ({len(body)} bytes)"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") not in refusals:
                raise
        written = f"{attacker.name}/../{target.name}/dot-dot-by-{attacker.name}.txt"
        try:
            s3.put_object(Bucket="models", Key=written, Body=b"x")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in refusals:
                s3_denied(f"the server refused keys with '..' ({code})", error)
            raise
        landed = _s3(stack, target).list_objects_v2(Bucket="models", Prefix=f"{target.name}/dot-dot-by-")
        s3.delete_object(Bucket="models", Key=written)
        if landed.get("Contents"):
            return f"PUT {written!r} landed in the target's prefix"
        s3_denied("the climbing key stayed a literal key under the attacker's own prefix")

    def s3_presigned() -> str:
        import requests

        url = s3.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": planted["key"]}, ExpiresIn=60)
        response = requests.get(url, timeout=10)
        if response.status_code == 200:
            return (
                f"a URL presigned with the attacker's key fetched the target's object ({len(response.content)} bytes)"
            )
        s3_denied(f"the presigned URL answered HTTP {response.status_code}")

    def s3_iam_users() -> str:
        """SeaweedFS serves an IAM API on the S3 port: users and their access keys."""
        from botocore.exceptions import ClientError
        from botocore.parsers import ResponseParserError

        iam = stack.s3_client(attacker.access_key, attacker.secret_key, service="iam")
        try:
            keys = iam.list_access_keys(UserName=target.name)["AccessKeyMetadata"]
        except ClientError as error:
            s3_denied(f"the IAM API refused ({error.response['ResponseMetadata']['HTTPStatusCode']})", error)
        except ResponseParserError as error:  # no IAM API on this port: the S3 server's own answer
            s3_denied("no IAM API on the S3 port", error)
        if any(key.get("UserName") == target.name for key in keys):
            return f"the IAM API listed the target's access key ids ({len(keys)})"
        s3_denied("the IAM API answered without the target's keys")

    def s3_multi_delete() -> str:
        answer = s3.delete_objects(Bucket="models", Delete={"Objects": [{"Key": planted["key"]}]})
        still = _s3(stack, target).list_objects_v2(Bucket="models", Prefix=planted["key"]).get("Contents", [])
        if still:
            codes = sorted({error.get("Code", "") for error in answer.get("Errors", [])})
            raise Denied(f"multi-delete left the object in place ({', '.join(codes) or 'no error reported'})")
        return f"multi-delete removed s3://models/{planted['key']}"

    def artifact_download() -> str:
        body = s3.get_object(Bucket=artifact.netloc, Key=artifact.path.lstrip("/"))["Body"].read()
        return f"downloaded the target's run artifact ({len(body)} bytes)"

    def get_run() -> str:
        run = mlflow.get_run(planted["run_id"])
        return f"read run {run.info.run_id} of experiment {run.info.experiment_id}"

    def search_runs() -> str:
        runs = mlflow.search_runs([planted["experiment_id"]])
        if not runs:
            raise Denied("search answered with none of the target's runs")
        return f"search returned {len(runs)} of the target's runs"

    def log_to_run() -> str:
        mlflow.log_metric(planted["run_id"], "tampered", 1.0)
        return "logged a metric into the target's run"

    def read_model() -> str:
        model = mlflow.get_registered_model(planted["model"])
        return f"read registered model {model.name}"

    def move_alias() -> str:
        mlflow.set_registered_model_alias(planted["model"], "champion", planted["version"])
        return "moved the target's champion alias"

    def get_by_alias() -> str:
        version = mlflow.get_model_version_by_alias(planted["model"], "champion")
        return f"resolved the target's champion alias to version {version.version}"

    def search_models() -> str:
        names = [m.name for m in mlflow.search_registered_models(f"name = '{planted['model']}'")]
        if not names:
            raise Denied("the search answered without the target's model")
        return f"registered-model search listed {names}"

    def search_versions() -> str:
        found = mlflow.search_model_versions(f"name = '{planted['model']}'")
        if not found:
            raise Denied("the version search answered without the target's versions")
        return f"version search listed {len(found)} of the target's versions"

    def search_experiments() -> str:
        names = [e.name for e in mlflow.search_experiments(filter_string=f"name = '{target.name}'")]
        if not names:
            raise Denied("the experiment search answered without the target's experiment")
        return f"experiment search listed {names}"

    def forge_history() -> str:
        """A forged promotion record on the target's model (what `mlops history` reads)."""
        mlflow.set_registered_model_tag(planted["model"], "mlops.history.9999999999", "forged promotion")
        return "wrote a mlops.history tag on the target's registered model"

    def forge_version_tag() -> str:
        mlflow.set_model_version_tag(planted["model"], planted["version"], "artifact_sha256", "0" * 64)
        return "rewrote the target version's artifact_sha256 tag"

    def delete_alias() -> str:
        mlflow.delete_registered_model_alias(planted["model"], "champion")
        return "deleted the target's champion alias"

    def rename_model() -> str:
        mlflow.rename_registered_model(planted["model"], f"{planted['model']}-renamed-by-{attacker.name}")
        return "renamed the target's registered model"

    def squat_model_name() -> str:
        """A registered model in the target's namespace: its creator gets MANAGE, and the target's
        own register then fails on it with 403 (name squatting)."""
        name = f"{target.name}-squatted-by-{attacker.name}-{int(time.time())}"
        mlflow.create_registered_model(name)
        mlflow.delete_registered_model(name)
        return f"created (then deleted) registered model {name!r} in the target's namespace"

    def squat_experiment_name() -> str:
        name = f"{target.name}-squatted-by-{attacker.name}-{int(time.time())}"
        experiment_id = mlflow.create_experiment(name)
        mlflow.delete_experiment(experiment_id)
        return f"created experiment {name!r} in the target's namespace"

    def delete_version() -> str:
        mlflow.delete_model_version(planted["model"], planted["version"])
        return "deleted the target's model version"

    def delete_run() -> str:
        mlflow.delete_run(planted["run_id"])
        return "deleted the target's run"

    def mlflow_deputy() -> str:
        """A version of A's own model whose source is B's prefix, then the server's artifact download.

        The tracking server reads artifacts with its own S3 key; if it holds one that reaches B's
        prefix, it streams B's object to anyone who may read A's model (a confused deputy).
        """
        import requests

        name = f"{attacker.name}-deputy-probe"
        if not mlflow.search_registered_models(f"name = '{name}'"):
            mlflow.create_registered_model(name)
        directory, _, file = planted["key"].rpartition("/")
        version = mlflow.create_model_version(name, source=f"s3://models/{directory}")
        response = requests.get(
            f"{stack.tracking_uri}/model-versions/get-artifact",
            params={"name": name, "version": version.version, "path": file},
            auth=(attacker.name, attacker.password),
            timeout=30,
        )
        if response.status_code == 200 and response.content == b"target's model bytes":
            return f"the tracking server streamed s3://models/{planted['key']} through version {version.version}"
        raise Denied(f"the tracking server answered HTTP {response.status_code} without the target's bytes")

    def side_door(port: int, path: str, what: str) -> Any:
        """GET on one of weed's own HTTP ports, with no key; unreachable or refused is Denied."""
        import requests

        try:
            response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        except requests.ConnectionError as error:
            raise Denied(f"the {what}'s port is not reachable from here (weed runs in a network of its own)") from error
        if response.status_code != 200:
            raise Denied(
                f"the {what} answered HTTP {response.status_code} (it wants a token signed with the stack's key)"
            )
        return response

    def seaweed_master() -> str:
        """SeaweedFS's master answers HTTP with no key at all; its /col/delete drops a bucket's
        volumes, every tenant's objects at once. Only asked for its status here."""
        side_door(stack.ports.weed(0), "/dir/status", "master")
        return "the master's /dir/status answered without a key: its /col/delete would drop every tenant's objects"

    def seaweed_filer() -> str:
        """The filer's HTTP port serves every object by path, outside the S3 identities."""
        response = side_door(stack.ports.weed(4), f"/buckets/models/{planted['key']}", "filer")
        return f"the filer served s3://models/{planted['key']} ({len(response.content)} bytes) without a key"

    def feast_registry() -> str:
        with _pg(stack, attacker, f"feast_{target.name}") as connection:
            connection.execute("select 1")
        return f"connected to the target's Feast registry database feast_{target.name}"

    def offline_schema() -> str:
        import psycopg2

        # raw psycopg2, as a notebook would: the role's privileges are the only barrier
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=stack.ports.postgres,
            dbname=_offline(target),
            user=attacker.name,
            password=attacker.password,
            connect_timeout=3,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"select secret from {target.name}.probe")
                rows = cursor.fetchall()
        finally:
            connection.close()
        return f"read {len(rows)} rows of {target.name}.probe"

    import redis

    own_redis = any(a.path == "own: redis own online store" and a.observed == OK for a in own)

    def redis_target_store() -> str:
        """Into the target's instance: as the attacker's user, then as the default user."""
        for username in (None, ""):
            try:
                keys = _redis(stack, attacker, on=target, username=username).scan(count=100)[1]
            except redis.exceptions.AuthenticationError:
                if not own_redis:
                    raise  # the attacker's credentials proved nothing: ERROR, not DENIED
                continue
            return f"SCAN of the target's store as {username or attacker.name!r} listed {len(keys)} keys"
        raise Denied("the target's store knows neither the attacker's user nor an open default user")

    def redis_poison() -> str:
        """`--set materialize.project=<target>`: a far-future `_ts:` under the target's project's keys."""
        key = _redis_key(target.name)
        _redis(stack, attacker).hset(key, mapping={"_ts:probe": b"far future"})
        if _redis(stack, target).hget(key, "_ts:probe") != b"far future":
            raise Denied("written into the attacker's own store only; the target's keys are untouched")
        return "the target's online store now holds the attacker's far-future timestamp"

    def redis_flushall() -> str:
        _redis(stack, attacker).flushall()
        return "FLUSHALL ran on the store the attacker reaches"

    def redis_config_set() -> str:
        _redis(stack, attacker).config_set("maxmemory-samples", 5)  # the default: harmless if it leaks
        return "CONFIG SET ran: the attacker can change the store's memory limit and policy"

    def catalog_metadata() -> str:
        """From A's own database, the catalogs (pg_class, pg_attribute) that every role may read."""
        with _pg(stack, attacker, _offline(attacker)) as connection:
            rows = connection.execute(
                "select n.nspname, c.relname, a.attname from pg_attribute a"
                " join pg_class c on a.attrelid = c.oid join pg_namespace n on c.relnamespace = n.oid"
                " where n.nspname = %s and a.attnum > 0",
                (target.name,),
            ).fetchall()
        if not rows:
            raise Denied("the catalogs A can read hold nothing of the target's tables")
        return f"the catalogs name the target's tables and columns: {sorted({f'{r[0]}.{r[1]}.{r[2]}' for r in rows})}"

    def connection_exhaustion() -> str:
        """Hold as many direct connections as PostgreSQL gives A, then see whether B still gets one."""
        import psycopg

        held: list[Any] = []
        stopped_by = ""
        try:
            for _ in range(stack.max_connections):
                try:
                    held.append(_pg(stack, attacker, _offline(attacker)))
                except psycopg.OperationalError as error:
                    stopped_by = " ".join(str(error).split())
                    break
            try:
                with _pg(stack, target, _offline(target)) as connection:
                    connection.execute("select 1")
            except psycopg.OperationalError as error:
                return f"holding {len(held)} connections, A starved the target: {str(error).strip()[-80:]}"
        finally:
            for connection in held:
                connection.close()
        if "too many connections for role" in stopped_by:
            raise Denied(f"the role's connection limit stopped it at {len(held)}; the target still connects")
        return f"held {len(held)} connections ({stopped_by[-100:] or 'no limit met'}); the target got in this time"

    probes: list[tuple[str, Callable[[], str]]] = [
        ("s3 GET target object", s3_get),
        ("s3 PUT into target prefix", s3_put),
        ("s3 LIST target prefix", s3_list),
        ("s3 LIST whole bucket", s3_list_bucket),
        ("s3 GET target run artifact", artifact_download),
        ("s3 HEAD target object", s3_head),
        ("s3 LIST v1 target prefix", s3_list_v1),
        ("s3 LIST object versions", s3_list_versions),
        ("s3 COPY target object out", s3_copy_out),
        ("s3 UploadPartCopy from target", s3_upload_part_copy),
        ("s3 multipart upload into target prefix", s3_multipart_into),
        ("s3 ../ keys across prefixes", s3_dot_dot),
        ("s3 presigned GET target object", s3_presigned),
        ("s3 IAM API: the target's access keys", s3_iam_users),
        ("mlflow get target run", get_run),
        ("mlflow search target runs", search_runs),
        ("mlflow log to target run", log_to_run),
        ("mlflow read target model", read_model),
        ("mlflow move target alias", move_alias),
        ("mlflow get target model by alias", get_by_alias),
        ("mlflow search registered models", search_models),
        ("mlflow search model versions", search_versions),
        ("mlflow search experiments", search_experiments),
        ("mlflow forge target history tag", forge_history),
        ("mlflow rewrite target version tag", forge_version_tag),
        ("mlflow delete target alias", delete_alias),
        ("mlflow squat a model name in target's namespace", squat_model_name),
        ("mlflow squat an experiment name in target's namespace", squat_experiment_name),
        ("mlflow rename target model", rename_model),
        ("mlflow delete target version", delete_version),
        ("mlflow delete target run", delete_run),
        ("mlflow artifact via own version (deputy)", mlflow_deputy),
        ("seaweedfs master admin API (side door)", seaweed_master),
        ("seaweedfs filer GET target object (side door)", seaweed_filer),
        ("feast target registry db", feast_registry),
        ("postgres target schema", offline_schema),
        ("postgres target catalog metadata", catalog_metadata),
        ("postgres connection exhaustion", connection_exhaustion),
        ("redis SCAN target store", redis_target_store),
        ("redis write target project keys", redis_poison),
        ("redis CONFIG SET", redis_config_set),
        ("redis FLUSHALL", redis_flushall),
        ("s3 multi-delete target object", s3_multi_delete),
        ("s3 DELETE target object", s3_delete),  # last: a leak here removes what the others look at
    ]
    with _as(attacker):
        return own + [_attempt(path, call) for path, call in probes]
