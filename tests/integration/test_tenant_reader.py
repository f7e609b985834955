"""issue 29 on the loopback stack: the scoring transformer reads as its tenant's reader, and writes nothing.

The transformer held the tenant's read-write Redis user and the role that owns its Feast registry.
`mlops tenant add` now also makes the tenant's reader (components/platform/readonly.py: a Redis user that
may only read hashes, a role that may only SELECT the registry), and `mlops tenant env` exports
it as MLOPS_READER_*, which the local transformer takes over the tenant's own. On the tenancy
stack the tenancy tests share: the tenant publishes its feature service and one entity's feature
as itself; the transformer's read path (the registry through the tenant's pool, then one HMGET)
finds it as the reader (the positive control); the reader's writes are refused on both stores;
and the tenant's own writes, the control broken on purpose, go through, so the refusals are the
reader's rights and not stores that take no writes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from components.platform.readonly import local_transformer_environment, reader_name
from devstack.postgres import run_sql
from devstack.stack import Stack
from devstack.tenants import Tenant, add_tenant, tenant_environment
from tests.conftest import REPO

pytestmark = pytest.mark.integration
TENANT = "fraud"
ENTITY = 4242
FEATURE = "amount_avg_7d"  # a Float64: Feast's Value proto field 5, fixed64
VALUE = 0.25


@pytest.fixture(scope="module")
def published(tenancy_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tenant's feature service in its registry and one entity's feature in its Redis, written as the tenant."""
    from components.environment import temporary_env
    from components.serving.online_reader import OnlineFeatureReader
    from components.steps.materialize import apply_repo, open_store
    from pipelines.fraud import pipeline as fraud

    tenant = add_tenant(tenancy_stack, TENANT)  # idempotent: the tenancy tests add it too
    env = tenant_environment(tenancy_stack, tenant)
    m = fraud.DECLARATION.config().materialize
    with temporary_env(env):
        store = open_store(m.project, tmp_path_factory.mktemp("tenant-store"))
        apply_repo(store, REPO / "pipelines" / "fraud" / "feature_repo", f"s3://feast-offline/{TENANT}/probe.parquet")
        key, field = OnlineFeatureReader(store, m.feature_service).location({m.entity_column: ENTITY}, FEATURE)
    own = redis.Redis(port=tenant.redis_port, username=TENANT, password=tenant.password)
    own.hset(key, field, b"\x29" + struct.pack("<d", VALUE))
    return {"tenant": tenant, "env": env, "project": m.project, "service": m.feature_service,
            "entity": m.entity_column, "key": key, "field": field}  # fmt: skip


def reader_redis(tenant: Tenant) -> redis.Redis:
    return redis.Redis(port=tenant.redis_port, username=reader_name(tenant.name), password=tenant.reader_password)


def registry(env: dict[str, str], user: str, password: str) -> psycopg.Connection:
    """The tenant's registry database through its pool, as Feast's SQL registry connects."""
    url = urlsplit(env["MLOPS_FEAST_REGISTRY_URL"])
    return psycopg.connect(host=url.hostname, port=url.port, dbname=url.path.lstrip("/"), user=user,
                           password=password, prepare_threshold=None, autocommit=True)  # fmt: skip


def test_the_transformers_read_path_finds_the_feature_as_the_reader(published: dict[str, Any], tmp_path: Path) -> None:
    """The positive control: what the transformer does at start and per request, with the reader's
    credentials in the place of the tenant's (as devstack/transformer.py puts them)."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from components.environment import temporary_env
    from components.platform.readonly import read_only_registry
    from components.platform.services import feast_store_config
    from components.serving.online_reader import OnlineFeatureReader

    env, tenant = published["env"], published["tenant"]
    reader = local_transformer_environment(env)
    assert set(reader.values()) == {reader_name(TENANT), tenant.reader_password}, "mlops tenant env exports it"
    with temporary_env({**env, **reader}):
        config = read_only_registry(feast_store_config(published["project"], "transformer") or {})
        config["offline_store"] = {"type": "file"}
        config.pop("materialization_config", None)
        assert f"//{reader_name(TENANT)}:" in config["registry"]["path"]
        assert f"username={reader_name(TENANT)}" in config["online_store"]["connection_string"]
        store = FeatureStore(config=RepoConfig(repo_path=tmp_path, **config))
        found = OnlineFeatureReader(store, published["service"]).get([{published["entity"]: ENTITY}])
    assert found[FEATURE] == [VALUE]


def test_the_reader_writes_nothing_where_the_tenant_still_does(published: dict[str, Any]) -> None:
    """The forbidden paths: HSET, DEL, FLUSHALL and CONFIG on Redis, and INSERT, UPDATE, DELETE and
    DROP on the registry, are refused to the reader; then the tenant's own identities, the broken
    control, write both stores, so the test can tell a refusal from a store that takes nothing."""
    env, tenant, key, field = published["env"], published["tenant"], published["key"], published["field"]
    service, project = published["service"], published["project"]
    for command in [("HSET", key, field, b"forged"), ("DEL", key), ("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "0"),
                    ("SET", b"planted", b"1"), ("KEYS", "*")]:  # fmt: skip
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader_redis(tenant).execute_command(*command)
    with registry(env, reader_name(TENANT), tenant.reader_password) as connection:
        mine = "where feature_service_name = %s and project_id = %s"  # other tests publish beside it
        found = connection.execute(f"select count(*) from feature_services {mine}", (service, project))
        assert found.fetchone() == (1,), "the reader reads the service the tenant published"
        for statement in ("insert into feature_services (feature_service_name, project_id) values ('forged', 'x')",
                          "update feature_services set last_updated_timestamp = 0", "delete from feature_services",
                          "drop table feature_services", "create table planted (id int)"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
    assert reader_redis(tenant).hget(key, field) == b"\x29" + struct.pack("<d", VALUE), "nothing changed"
    own = redis.Redis(port=tenant.redis_port, username=TENANT, password=tenant.password)
    assert own.hset(key, field, b"\x29" + struct.pack("<d", VALUE)) == 0  # the tenant's user writes
    with registry(env, TENANT, tenant.password) as connection:
        touch = "update feature_services set last_updated_timestamp = last_updated_timestamp"
        updated = connection.execute(f"{touch} {mine}", (service, project))
        assert updated.rowcount == 1


def test_the_isolation_check_finds_the_transformers_writes_denied_and_a_widened_reader_leaking(
    tenancy_stack: Stack, published: dict[str, Any]
) -> None:
    """issue 29's row of `mlops isolation-check` (mlops/isolation/transformer_reader.py): its
    positive controls (the reader reads its store and registry) are OK and its writes DENIED; the
    reader widened on purpose (every Redis command, INSERT on the registry) reads LEAK on both."""
    from devstack.tenants import write_redis_acl
    from mlops.isolation import DENIED, LEAK, OK, check
    from mlops.isolation.transformer_reader import CONTROL_TABLE, OWN, PROBES

    fraud, pricing = published["tenant"], add_tenant(tenancy_stack, "pricing")
    controls, probes = [path for path, _ in OWN], [path for path, _ in PROBES]
    rows = {attempt.path: attempt.observed for attempt in check(tenancy_stack, fraud, pricing, ["transformer"])}
    assert rows == {**dict.fromkeys(controls, OK), **dict.fromkeys(probes, DENIED)}, rows
    admin = redis.Redis(port=fraud.redis_port, username="admin", password=tenancy_stack.redis_admin_password)
    admin.execute_command("ACL", "SETUSER", reader_name(TENANT), "~*", "+@all")
    run_sql(
        tenancy_stack, f"feast_{TENANT}", f"grant insert on {CONTROL_TABLE} to {reader_name(TENANT)}", superuser=True
    )
    try:
        widened = {attempt.path: attempt.observed for attempt in check(tenancy_stack, fraud, pricing, ["transformer"])}
    finally:
        write_redis_acl(tenancy_stack, fraud)
        revoke = f"revoke insert on {CONTROL_TABLE} from {reader_name(TENANT)}"
        run_sql(tenancy_stack, f"feast_{TENANT}", revoke, superuser=True)
    assert widened == {**dict.fromkeys(controls, OK), **dict.fromkeys(probes, LEAK)}, widened
