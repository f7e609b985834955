"""Tenants on the shared services: one identity per service, scoped to the tenant's own data.

`mlops tenant add <name>` provisions, idempotently:
- S3: an access key whose identity may Read, Write, List and Tag only `<bucket>/<name>/*`, except in
  `decisions`, where it reads and lists its log but writes only `decisions/<name>/_outcomes/*`
  (components/platform/tenant_s3.py tenant_grants: the log is evidence, not the tenant's to rewrite);
- PostgreSQL: a login role with a connection limit, and two databases only it may connect to:
  its Feast registry `feast_<name>` and its offline tables `offline_<name>` (schema `<name>`);
- PgBouncer: one of its own (devstack.tenant_pgbouncer: its port, its registry database, its role,
  its server connections capped, few client slots), so one tenant cannot take another's client
  slots or the platform's (issue 29); the platform's PgBouncer knows the platform's role only;
- Redis: an instance of its own (port, memory limit), whose only users are the tenant (its keys,
  no administration: FLUSHALL, CONFIG, SHUTDOWN, ... refused), its reader and the platform's admin;
- the scoring transformer's reader (components/platform/readonly.py): a Redis user that may only read
  hashes and a login role that may only SELECT its Feast registry, with a password of its own,
  which `mlops tenant env` exports as MLOPS_READER_* for the local transformer;
- the scoring transformer's decisions writer: an S3 identity `<name>-decisions` that may only write
  `decisions/<name>/*` (DECISIONS_WRITER_ACTIONS), exported as MLOPS_DECISIONS_AWS_* for the local
  transformer, so a subverted transformer cannot overwrite a model (the cluster's
  tenant-decisions-credentials, components/steps/serving_decisions.py);
- MLflow (basic-auth app, default permission NO_PERMISSIONS): a user, and an experiment
  `<name>` (artifacts under `s3://mlflow-artifacts/<name>/`) on which it has MANAGE.
Credentials are generated once and kept in `<stack>/tenants/<name>.json` (mode 0600).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from components.environment import temporary_env
from components.errors import ComponentError
from components.platform.buckets import DECISIONS, TENANT_BUCKETS
from components.platform.readonly import (
    READER_REDIS_RULES,
    READER_VARIABLES,
    local_variable,
    reader_grants,
    reader_name,
)
from components.platform.settings import (  # the same on the cluster
    TENANT_CONNECTION_LIMIT,
    TENANT_REDIS_RULES,
)
from components.platform.tenant_s3 import S3_ACTIONS, tenant_grants
from devstack import process, seaweedfs
from devstack.pgbouncer import write_userlist
from devstack.postgres import run_sql
from devstack.stack import PORT_SPAN, Stack
from devstack.transformer import DECISIONS_VARIABLES

__all__ = [
    "DECISIONS_WRITER_ACTIONS",
    "NAME",
    "PLATFORM_PREFIXES",
    "RESERVED",
    "S3_ACTIONS",
    "TENANT_REDIS_MAXMEMORY",
    "Tenant",
    "add_tenant",
    "check_name",
    "decisions_writer_actions",
    "decisions_writer_environment",
    "decisions_writer_name",
    "get_tenant",
    "load_tenants",
    "offline_database",
    "platform_variables",
    "reader_environment",
    "s3_actions",
    "tenant_environment",
    "tenant_process_environment",
    "write_redis_acl",
    "write_s3_identities",
]

NAME = re.compile(r"[a-z][a-z0-9]{1,30}")  # always fullmatch: "$" also matches before a final newline
# Names the services already give a meaning: MLflow's admin user, PostgreSQL's superuser and
# built-in schema and templates, the platform's own role and databases, Redis's default user.
RESERVED = frozenset(
    {"admin", "postgres", "mlops", "public", "template0", "template1", "mlflow", "feast", "offline", "default", "root"}
)
DECISIONS_WRITER_ACTIONS = ("Write",)
"""The transformer's decisions writer, on `decisions/<name>/*` only: it puts Parquet files (pyarrow's
S3 client, components/serving/decision_log.py) and re-sends spilled ones from the pod's own disk, so
it never reads, lists or tags (measured: tests/integration/test_decisions_writer.py). SeaweedFS's
Write also allows DeleteObject there; a MinIO policy can grant s3:PutObject alone."""
# Each tenant's online store is a Redis of its own (components.platform.settings.TENANT_REDIS_RULES).
TENANT_REDIS_MAXMEMORY = "128mb"


@dataclass(frozen=True)
class Tenant:
    name: str
    access_key: str
    secret_key: str
    password: str
    reader_password: str = ""  # the transformer's read-only identity ("": an older tenant file, given one at add)
    redis_port: int = 0  # its own Redis instance (0: not given one yet, an older tenant file)
    pgbouncer_port: int = 0  # its own PgBouncer (devstack.tenant_pgbouncer; 0: not given one yet)
    decisions_access_key: str = ""  # the transformer's decisions writer ("": an older tenant file, given one at add)
    decisions_secret_key: str = ""


def _folder(stack: Stack) -> Any:
    folder = stack.root / "tenants"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def load_tenants(stack: Stack) -> dict[str, Tenant]:
    tenants = {}
    for file in sorted(_folder(stack).glob("*.json")):
        data = json.loads(file.read_text())
        tenants[data["name"]] = Tenant(**data)
    return tenants


def get_tenant(stack: Stack, name: str) -> Tenant:
    tenants = load_tenants(stack)
    if name not in tenants:
        raise ComponentError("tenant", f"no tenant {name!r} in {stack.root}", f"mlops tenant add {name}")
    return tenants[name]


def s3_actions(name: str, broadened: bool = False, *, writes_own_log: bool = False) -> list[str]:
    """The identity's actions, rendered from components/platform/tenant_s3.py tenant_grants: the
    tenant's prefix in every tenant bucket, its decision log read-only but for `_outcomes/` (SeaweedFS
    matches an action ending in `*` as a prefix of `<action>:<bucket>/<key>`). Broadened: whole
    buckets; `writes_own_log`: the old wide Write on `decisions/<name>/*` (isolation tests). Never
    the database's backup bucket (BACKUPS), broadened or not."""
    if broadened:
        return [f"{action}:{bucket}" for bucket in TENANT_BUCKETS for action in S3_ACTIONS]
    grants = tenant_grants(name, writes_own_log=writes_own_log)
    return [f"{action}:{bucket}/{prefix}*" for action, bucket, prefix in grants]


def decisions_writer_name(name: str) -> str:
    """The decisions writer's S3 identity: `<name>-decisions` (a tenant name has no `-`)."""
    return f"{name}-decisions"


def decisions_writer_actions(name: str, broadened: bool = False) -> list[str]:
    """The decisions writer's actions: DECISIONS_WRITER_ACTIONS on `decisions/<name>/*` only (or,
    broadened, a tenant identity's on every tenant bucket whole: the isolation tests' widened policy)."""
    if broadened:
        return s3_actions(name, broadened=True)
    return [f"{action}:{DECISIONS}/{name}/*" for action in DECISIONS_WRITER_ACTIONS]


def write_s3_identities(
    stack: Stack,
    broadened: frozenset[str] = frozenset(),
    broadened_writers: frozenset[str] = frozenset(),
    writes_own_log: frozenset[str] = frozenset(),
) -> str:
    """Rewrite the S3 server's identities (admin, every tenant and its decisions writer) and have a
    running server load them (devstack.seaweedfs.apply_identities: nothing when they are unchanged, a
    reload, a restart only when one was taken out); `broadened`/`broadened_writers` widen those
    tenants' policies, `writes_own_log` gives those tenants' keys Write on their own decision log
    (isolation tests: each a policy broken on purpose). Returns what applying them took."""
    identities = stack.s3_identities()
    for tenant in load_tenants(stack).values():
        identities.append(
            {
                "name": tenant.name,
                "credentials": [{"accessKey": tenant.access_key, "secretKey": tenant.secret_key}],
                "actions": s3_actions(
                    tenant.name, tenant.name in broadened, writes_own_log=tenant.name in writes_own_log
                ),
            }
        )
        if tenant.decisions_access_key:
            identities.append(
                {
                    "name": decisions_writer_name(tenant.name),
                    "credentials": [
                        {"accessKey": tenant.decisions_access_key, "secretKey": tenant.decisions_secret_key}
                    ],
                    "actions": decisions_writer_actions(tenant.name, tenant.name in broadened_writers),
                }
            )
    return seaweedfs.apply_identities(stack, identities)


def _redis_acl(stack: Stack, tenant: Tenant, broadened: bool = False) -> str:
    rules = "~* &* +@all" if broadened else TENANT_REDIS_RULES
    reader = f"user {reader_name(tenant.name)} on >{tenant.reader_password} {READER_REDIS_RULES}\n"
    return (
        "user default off\n"
        f"user admin on >{stack.redis_admin_password} ~* &* +@all\n"
        f"user {tenant.name} on >{tenant.password} {rules}\n"
    ) + (reader if tenant.reader_password else "")


def write_redis_acl(stack: Stack, tenant: Tenant, broadened: bool = False) -> None:
    """Write the tenant instance's users and, if it runs, make it load them (ACL LOAD as admin)."""
    import redis

    folder = stack.folder(f"redis-{tenant.name}")
    process.write_private(folder / "users.acl", _redis_acl(stack, tenant, broadened))
    if stack.running(f"redis-{tenant.name}"):
        admin = redis.Redis(
            host="127.0.0.1", port=tenant.redis_port, username="admin", password=stack.redis_admin_password
        )
        admin.execute_command("ACL", "LOAD")


def _provision_redis(stack: Stack, tenant: Tenant) -> Tenant:
    """The tenant's own Redis: a port of its own, its ACL user, its memory limit; started now."""
    if not tenant.redis_port:
        tenant = replace(tenant, redis_port=_free_port(stack))
        process.write_private(_folder(stack) / f"{tenant.name}.json", json.dumps(asdict(tenant), indent=2))
    folder = stack.folder(f"redis-{tenant.name}")
    write_redis_acl(stack, tenant)
    config = "\n".join(
        [
            f"port {tenant.redis_port}",
            f"aclfile {folder / 'users.acl'}",
            f"maxmemory {TENANT_REDIS_MAXMEMORY}",
            "",
        ]
    )
    process.write_private(folder / "redis.conf", config)
    stack.up(("redis",))  # starts the instances that are not running, this one included
    return tenant


def _free_port(stack: Stack) -> int:
    """A loopback port for a tenant's own service: above the stack's span, no tenant's yet."""
    taken = {port for other in load_tenants(stack).values() for port in (other.redis_port, other.pgbouncer_port)}
    taken |= set(range(stack.ports.postgres, stack.ports.postgres + PORT_SPAN))
    above = range(stack.ports.postgres + PORT_SPAN, 60_000)
    return next(port for port in above if port not in taken and process.port_free(port))


def _superuser(stack: Stack, database: str, statement: str) -> Any:
    return run_sql(stack, database, statement, superuser=True)


def _provision_postgres(stack: Stack, tenant: Tenant) -> None:
    name = tenant.name
    exists = _superuser(stack, "postgres", f"select 1 from pg_roles where rolname = '{name}'")
    verb = "alter" if exists else "create"
    _superuser(
        stack,
        "postgres",
        f"{verb} role {name} login password '{tenant.password}' connection limit {TENANT_CONNECTION_LIMIT}",
    )
    # Every database is closed to PUBLIC: a role connects only where it is let in.
    databases = [row[0] for row in _superuser(stack, "postgres", "select datname from pg_database where datallowconn")]
    for database in databases:
        if database not in ("postgres", "template1"):
            _superuser(stack, "postgres", f"revoke connect on database {database} from public")
    # A database of its own for each use, not a schema in a shared one: within one database
    # pg_class and pg_attribute show every schema's table and column names to every role.
    for database in (f"feast_{name}", offline_database(name)):
        if not _superuser(stack, "postgres", f"select 1 from pg_database where datname = '{database}'"):
            _superuser(stack, "postgres", f"create database {database} owner {name}")
        _superuser(stack, "postgres", f"revoke connect on database {database} from public")
    _superuser(stack, offline_database(name), f"create schema if not exists {name} authorization {name}")
    _superuser(stack, offline_database(name), f"revoke all on schema {name} from public")
    _superuser(stack, "postgres", f"revoke connect on database offline from {name}")  # the shared one, before
    _provision_reader_role(stack, tenant)


def _provision_reader_role(stack: Stack, tenant: Tenant) -> None:
    """The transformer's role: it may connect to the tenant's registry and SELECT there, no more
    (components.platform.readonly.reader_grants, as the cluster's tenant-databases Job runs them)."""
    reader, database = reader_name(tenant.name), f"feast_{tenant.name}"
    verb = "alter" if _superuser(stack, "postgres", f"select 1 from pg_roles where rolname = '{reader}'") else "create"
    login = f"login noinherit password '{tenant.reader_password}' connection limit {TENANT_CONNECTION_LIMIT}"
    _superuser(stack, "postgres", f"{verb} role {reader} {login}")
    anywhere, inside = reader_grants(tenant.name, database)
    for statement in anywhere:
        _superuser(stack, "postgres", statement)
    for statement in inside:
        _superuser(stack, database, statement)


def offline_database(name: str) -> str:
    """The tenant's offline tables: database offline_<name>, schema <name>."""
    return f"offline_{name}"


def _provision_pgbouncer(stack: Stack, tenant: Tenant) -> Tenant:
    """The tenant's own PgBouncer (devstack.tenant_pgbouncer): a port of its own, its role only;
    started now, or made to reread its users."""
    from devstack import tenant_pgbouncer

    if not tenant.pgbouncer_port:
        tenant = replace(tenant, pgbouncer_port=_free_port(stack))
        process.write_private(_folder(stack) / f"{tenant.name}.json", json.dumps(asdict(tenant), indent=2))
    users = {tenant.name: tenant.password, reader_name(tenant.name): tenant.reader_password}  # and its transformer
    tenant_pgbouncer.write(stack, tenant.name, tenant.pgbouncer_port, users)
    tenant_pgbouncer.start(stack, tenant.name)
    return tenant


def _reload_pgbouncer(stack: Stack) -> None:
    """The platform's PgBouncer knows the platform's role only (a tenant has its own PgBouncer,
    _provision_pgbouncer): drop any tenant an older stack added, and reload it (SIGHUP)."""
    folder = stack.folder("pgbouncer")
    write_userlist(stack)
    ini = folder / "pgbouncer.ini"
    ini.write_text(ini.read_text().split("[users]")[0].rstrip() + "\n")
    process.give_to_service_user(folder)
    process.reload(stack.pid_file("pgbouncer"))


def _provision_mlflow(stack: Stack, tenant: Tenant) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": stack.admin_password}
    with temporary_env(admin):
        auth = AuthServiceClient(stack.tracking_uri)
        try:
            auth.create_user(tenant.name, tenant.password)
        except MlflowException as error:
            if "already exists" not in str(error) and "RESOURCE_ALREADY_EXISTS" not in str(error):
                raise
            auth.update_user_password(tenant.name, tenant.password)
        client = MlflowClient(tracking_uri=stack.tracking_uri)
        experiment = client.get_experiment_by_name(tenant.name)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else client.create_experiment(tenant.name, artifact_location=f"s3://mlflow-artifacts/{tenant.name}/")
        )
        try:
            auth.grant_user_permission(tenant.name, "experiment", str(experiment_id), "MANAGE")
        except MlflowException as error:
            if "already exists" not in str(error) and "RESOURCE_ALREADY_EXISTS" not in str(error):
                raise


def check_name(name: str) -> None:
    """A tenant name becomes a PostgreSQL role, an MLflow user, an S3 identity and a key prefix."""
    if not NAME.fullmatch(name):
        raise ComponentError(
            "tenant", f"tenant name {name!r} is not a lowercase identifier", "use 2-31 letters and digits, e.g. fraud"
        )
    if name in RESERVED or name.startswith("pg"):
        raise ComponentError(
            "tenant",
            f"tenant name {name!r} is reserved: a service already uses it for its own administration",
            "pick the team's name, e.g. fraud or pricing",
        )


def _refuse_taken(stack: Stack, name: str) -> None:
    """A new tenant's name must be free on every service: else someone already holds what it would get."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    holders = []
    if _superuser(stack, "postgres", f"select 1 from pg_roles where rolname = '{name}'"):
        holders.append(f"a PostgreSQL role {name!r}")
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": stack.admin_password}
    with temporary_env(admin):
        from mlflow import MlflowClient

        try:
            AuthServiceClient(stack.tracking_uri).get_user(name)
            holders.append(f"an MLflow user {name!r}")
        except MlflowException as error:
            if "RESOURCE_DOES_NOT_EXIST" not in str(error.error_code):
                raise
        experiment = MlflowClient(tracking_uri=stack.tracking_uri).get_experiment_by_name(name)
        if experiment is not None:
            holders.append(f"an MLflow experiment {name!r} (id {experiment.experiment_id}) that another user created")
    if holders:
        raise ComponentError(
            "tenant",
            f"tenant name {name!r} is already taken: {'; '.join(holders)}",
            "pick another name, or have the platform admin remove what holds it (a squatter keeps MANAGE on it)",
        )


def add_tenant(stack: Stack, name: str) -> Tenant:
    check_name(name)
    for service in ("postgres", "pgbouncer", "redis", "s3", "mlflow"):
        if not stack.running(service):
            raise ComponentError("tenant", f"{service} is not running under {stack.root}", "mlops dev up first")
    if not stack.mlflow_auth:
        raise ComponentError(
            "tenant",
            "the tracking server runs without the basic-auth app, so tenants cannot be kept apart there",
            "mlops dev down && mlops dev up --tenancy",
        )
    file = _folder(stack) / f"{name}.json"
    if file.exists():
        tenant = Tenant(**json.loads(file.read_text()))
    else:
        _refuse_taken(stack, name)
        tenant = Tenant(name, f"{name}-{secrets.token_hex(6)}", secrets.token_urlsafe(24), secrets.token_urlsafe(18))
        process.write_private(file, json.dumps(asdict(tenant), indent=2))
    if not tenant.reader_password:  # the transformer's identity, also for a tenant added before it existed
        tenant = replace(tenant, reader_password=secrets.token_urlsafe(18))
        process.write_private(file, json.dumps(asdict(tenant), indent=2))
    if not tenant.decisions_access_key:  # its decisions writer, likewise
        key = f"{decisions_writer_name(name)}-{secrets.token_hex(6)}"
        tenant = replace(tenant, decisions_access_key=key, decisions_secret_key=secrets.token_urlsafe(24))
        process.write_private(file, json.dumps(asdict(tenant), indent=2))
    write_s3_identities(stack)
    tenant = _provision_redis(stack, tenant)
    _provision_postgres(stack, tenant)
    tenant = _provision_pgbouncer(stack, tenant)
    _reload_pgbouncer(stack)
    _provision_mlflow(stack, tenant)
    return tenant


def tenant_environment(stack: Stack, tenant: Tenant) -> dict[str, str]:
    """What a member of the tenant gets: its own keys, user and databases, nobody else's."""
    from components.platform.settings import environment

    name = tenant.name
    settings = stack.settings().model_copy(
        update={
            "feast_registry_url": f"postgresql+psycopg://{name}@127.0.0.1:{tenant.pgbouncer_port}/feast_{name}",
            "serving_root": f"s3://models/{name}",
            "mlflow_artifact_root": f"s3://mlflow-artifacts/{name}",
            "offline_store_uri": f"s3://feast-offline/{name}",
            "feast_redis": f"127.0.0.1:{tenant.redis_port}",
        }
    )
    return {
        **environment(settings),
        "AWS_ACCESS_KEY_ID": tenant.access_key,
        "AWS_SECRET_ACCESS_KEY": tenant.secret_key,
        "MLFLOW_TRACKING_USERNAME": name,
        "MLFLOW_TRACKING_PASSWORD": tenant.password,
        "MLOPS_FEAST_REGISTRY_PASSWORD": tenant.password,
        "MLOPS_FEAST_REDIS_USERNAME": name,
        "MLOPS_FEAST_REDIS_PASSWORD": tenant.password,
        **reader_environment(tenant),
        **decisions_writer_environment(tenant),
    }


PLATFORM_PREFIXES = ("AWS_", "MLFLOW_", "MLOPS_", "FSSPEC_", "FEAST_")
"""The variables that carry a platform identity or a service's address (what `mlops dev env` and
`mlops tenant env` set): a tenant's process inherits none of them from whoever starts it."""


def platform_variables(env: Mapping[str, str]) -> dict[str, str]:
    """Only `env`'s platform variables (PLATFORM_PREFIXES)."""
    return {key: value for key, value in env.items() if key.startswith(PLATFORM_PREFIXES)}


def tenant_process_environment(stack: Stack, tenant: Tenant, inherited: Mapping[str, str]) -> dict[str, str]:
    """The environment of a process of the tenant's, as in its pod: `inherited` with every platform
    variable dropped (the caller's identity never leaks in), then the tenant's own."""
    kept = {key: value for key, value in inherited.items() if not key.startswith(PLATFORM_PREFIXES)}
    return {**kept, **tenant_environment(stack, tenant)}


def reader_environment(tenant: Tenant) -> dict[str, str]:
    """The transformer's read-only identity under the names the local transformer takes it from
    (components.platform.readonly.local_variable): the pipeline's steps keep the tenant's own."""
    if not tenant.reader_password:
        return {}
    reader = reader_name(tenant.name)
    values = {"username": reader, "password": tenant.reader_password}
    return {local_variable(name): values[key] for name, (_store, key) in READER_VARIABLES.items()}


def decisions_writer_environment(tenant: Tenant) -> dict[str, str]:
    """The transformer's decisions writer under the names the local transformer takes it from
    (devstack/transformer.py DECISIONS_VARIABLES): the pipeline's steps keep the tenant's own key."""
    if not tenant.decisions_access_key:
        return {}
    values = {"AWS_ACCESS_KEY_ID": tenant.decisions_access_key, "AWS_SECRET_ACCESS_KEY": tenant.decisions_secret_key}
    return {local: values[variable] for variable, local in DECISIONS_VARIABLES.items()}
