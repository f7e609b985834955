"""The scoring transformer's read-only identity: one source for its Redis rule, role and Secret names.

The transformer serves requests and only ever reads: Redis hashes (one pipelined HMGET per
request, components/serving/online_reader.py, as Feast's own Redis `online_read`) and the Feast SQL registry
(SELECT). Issue 29 found it logging in as the tenant's read-write Redis user and as the role that
owns the tenant's registry. It now logs in as the tenant's reader, made from what is here:
- on the cluster, pipelines/cluster.py writes the reader into each tenant's Redis ACL and
  CloudNativePG's roles, the tenant-databases Job grants it SELECT, and the InferenceService's
  transformer reads the reader Secrets (`reader_secret` of the tenant's Secret names,
  components.config.transformer_settings);
- on the loopback stack, devstack/tenants.py provisions the same user, role and grants, and
  `mlops tenant env` exports the reader's credentials under `local_variable` names, which the
  local transformer (devstack/transformer.py) takes as its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "READER_REDIS_RULES",
    "READER_VARIABLES",
    "local_transformer_environment",
    "local_variable",
    "read_only_registry",
    "reader_database_secret",
    "reader_grants",
    "reader_name",
    "reader_secret",
]

READER_REDIS_RULES = "resetchannels %R~* -@all +hmget +hget +hgetall +ping"
"""The reader's ACL rule on its tenant's Redis: read access to keys (`%R~*`: even a command it
held could not write) and the hash reads Feast's online path uses; nothing else: no write, no
administration, no KEYS or SCAN, no Pub/Sub. AUTH and HELLO need no permission; redis-py's
CLIENT SETINFO at connect is refused and ignored by the client."""

READER_VARIABLES = {
    "MLOPS_FEAST_REGISTRY_USERNAME": ("registry", "username"),
    "MLOPS_FEAST_REGISTRY_PASSWORD": ("registry", "password"),
    "MLOPS_FEAST_REDIS_USERNAME": ("redis", "username"),
    "MLOPS_FEAST_REDIS_PASSWORD": ("redis", "password"),
}
"""What the transformer logs in with, by variable: on the cluster each comes from the store's reader
Secret (its key `username` or `password`) and overrides the namespace ConfigMap's value."""


def reader_name(tenant: str) -> str:
    """The reader's Redis user and PostgreSQL role: `<tenant>_reader` (a tenant name has no `_`,
    so no tenant can be named like another's reader)."""
    return f"{tenant}_reader"


def reader_secret(secret: str) -> str:
    """The reader's Secret beside a tenant Secret: tenant-redis-credentials -> tenant-redis-reader-credentials."""
    return f"{secret.removesuffix('-credentials')}-reader-credentials"


def reader_database_secret(tenant: str) -> str:
    """CloudNativePG's basic-auth Secret of the reader role, beside the tenant's `<tenant>-db-credentials`."""
    return reader_secret(f"{tenant}-db-credentials")


def reader_grants(tenant: str, database: str) -> tuple[list[str], list[str]]:
    """SQL that lets the reader read the tenant's registry database and nothing more: (statements
    run anywhere, statements run in `database`). SELECT on the tables there now and on every table
    the tenant's role makes later (default privileges); no INSERT, UPDATE, DELETE or DDL, and no
    other database (each is closed to PUBLIC)."""
    reader = reader_name(tenant)
    return (
        [f"GRANT CONNECT ON DATABASE {database} TO {reader};"],
        [
            f"GRANT USAGE ON SCHEMA public TO {reader};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {tenant} IN SCHEMA public GRANT SELECT ON TABLES TO {reader};",
        ],
    )


def local_variable(variable: str) -> str:
    """The name `mlops tenant env` exports a reader credential under: MLOPS_FEAST_REDIS_PASSWORD ->
    MLOPS_READER_FEAST_REDIS_PASSWORD (the pipeline's own steps keep the tenant's read-write ones)."""
    return f"MLOPS_READER_{variable.removeprefix('MLOPS_')}"


def local_transformer_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The reader's credentials as the local transformer reads them, from `environment`'s
    MLOPS_READER_* variables (empty when none is set: a stack without tenants)."""
    return {name: environment[local_variable(name)] for name in READER_VARIABLES if local_variable(name) in environment}


def read_only_registry(config: dict[str, Any]) -> dict[str, Any]:
    """feature_store.yaml for the reader: a SQL registry's tables are checked, never created
    (Feast's schema_mode `verify`), since its role may only SELECT."""
    registry = config.get("registry")
    if isinstance(registry, dict) and registry.get("registry_type") == "sql":
        registry["schema_mode"] = "verify"
    return config
