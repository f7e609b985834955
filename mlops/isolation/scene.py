"""The scene every isolation probe works in: who attacks whom, what the target planted, and clients.

`seed` plants, as the target, something in each place (an object under its S3 prefixes, a file
of its decision log, put by its decisions writer, the log's only writer, a run with an artifact, a
registered model with an alias, a table in its schema, a key in its online store). A probe then
gets a `Scene` and tries, with the attacker's own credentials only, to read, list, write or delete
it. The clients here are the ones a curious tenant would use.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    import psycopg
    from mlflow import MlflowClient

    from devstack.stack import Stack
    from devstack.tenants import Tenant
    from mlops.isolation.outcomes import Attempt

__all__ = ["Scene", "as_tenant", "mlflow_client", "offline_database", "postgres", "redis_client", "redis_key"]
__all__ += ["s3_client", "seed"]


def s3_client(stack: Stack, tenant: Tenant) -> Any:
    """A boto3 S3 client signing with the tenant's own key."""
    return stack.s3_client(tenant.access_key, tenant.secret_key)


def as_tenant(tenant: Tenant) -> AbstractContextManager[None]:
    """The tenant's MLflow identity for a block (MLflow reads basic-auth credentials per request)."""
    from components.environment import temporary_env

    return temporary_env({"MLFLOW_TRACKING_USERNAME": tenant.name, "MLFLOW_TRACKING_PASSWORD": tenant.password})


def mlflow_client(stack: Stack) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)


def redis_client(stack: Stack, tenant: Tenant, on: Tenant | None = None, *, username: str | None = None) -> Any:
    """A client of `on`'s Redis (default: the tenant's own) with the tenant's user and password;
    `username=""` is the default user with no password. Typed Any: redis-py's stubs refuse the
    bytes keys Feast writes, which the server takes."""
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


def redis_key(project: str) -> bytes:
    """A key shaped like Feast's (serialized entity key + project), for an entity no pipeline uses."""
    return b"isolation-probe-entity" + project.encode()


def offline_database(tenant: Tenant) -> str:
    from devstack.tenants import offline_database as database

    return database(tenant.name)


def postgres(stack: Stack, tenant: Tenant, database: str) -> psycopg.Connection[Any]:
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


def seed(stack: Stack, target: Tenant) -> dict[str, Any]:
    """As the target: something in each place, for the attacker to look for."""
    from components.serving.decision_record import BUCKET as DECISIONS
    from mlops.isolation.decisions import planted_key
    from mlops.isolation.decisions_writer import writer_s3

    probe = f"isolation-probe/{int(time.time())}.txt"
    key = f"{target.name}/{probe}"
    s3_client(stack, target).put_object(Bucket="models", Key=key, Body=b"target's model bytes")
    decisions = planted_key(target.name)  # a batch of its decision log (issue 32), as its transformer writes it
    if not target.decisions_access_key:
        raise RuntimeError(f"tenant {target.name} has no decisions writer; run `mlops tenant add {target.name}`")
    writer_s3(stack, target).put_object(Bucket=DECISIONS, Key=decisions, Body=b"target's decisions")
    client = mlflow_client(stack)
    experiment = client.get_experiment_by_name(target.name)
    if experiment is None:
        raise RuntimeError(f"tenant {target.name} has no experiment; run `mlops tenant add {target.name}`")
    run = client.create_run(experiment.experiment_id, tags={"isolation": "probe"})
    # Direct mode: the client writes the artifact to S3 itself (MLflow caches its boto3 client
    # with the first credentials it saw, so write with the target's own client).
    location = urlparse(f"{run.info.artifact_uri}/weights.bin")
    s3_client(stack, target).put_object(Bucket=location.netloc, Key=location.path.lstrip("/"), Body=b"target's weights")
    client.set_terminated(run.info.run_id)
    model = f"{target.name}-probe"
    try:
        client.create_registered_model(model)
    except Exception as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    version = client.create_model_version(model, source=f"{run.info.artifact_uri}/weights.bin", run_id=run.info.run_id)
    client.set_registered_model_alias(model, "champion", version.version)
    with postgres(stack, target, offline_database(target)) as connection:
        connection.execute(f"create table if not exists {target.name}.probe (secret text)")
        connection.execute(f"insert into {target.name}.probe values ('target row')")
    redis_client(stack, target).hset(redis_key(target.name), mapping={"_ts:probe": b"target's timestamp"})
    return {
        "key": key,
        "decisions": decisions,
        "run_id": run.info.run_id,
        "artifact": f"{run.info.artifact_uri}/weights.bin",
        "experiment_id": experiment.experiment_id,
        "model": model,
        "version": version.version,
    }


@dataclass
class Scene:
    """One check's cast and props: the probes read it, and cache the attacker's clients on it."""

    stack: Stack
    attacker: Tenant
    target: Tenant
    planted: dict[str, Any]
    own: list[Attempt] = field(default_factory=list)
    _s3: Any = None
    _mlflow: MlflowClient | None = None

    @property
    def s3(self) -> Any:
        """The attacker's S3 client."""
        if self._s3 is None:
            self._s3 = s3_client(self.stack, self.attacker)
        return self._s3

    @property
    def mlflow(self) -> MlflowClient:
        """An MLflow client; the identity is the attacker's while the probes run (`as_tenant`)."""
        if self._mlflow is None:
            self._mlflow = mlflow_client(self.stack)
        return self._mlflow

    @property
    def prefix(self) -> str:
        """The target's prefix in the shared buckets."""
        return f"{self.target.name}/"

    def own_control_passed(self, path: str) -> bool:
        """Whether the attacker's positive control on one surface worked (its credentials are good)."""
        from mlops.isolation.outcomes import OK

        return any(attempt.path == path and attempt.observed == OK for attempt in self.own)
