"""What a tenant's process on the loopback stack inherits (devstack.tenants.tenant_process_environment),
its files only: no service runs here (the isolation gate and tests/integration use it on a live stack)."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import Ports, Stack
from devstack.tenants import (
    PLATFORM_PREFIXES,
    Tenant,
    platform_variables,
    tenant_environment,
    tenant_process_environment,
)

CALLER = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/platform",
    "AWS_ACCESS_KEY_ID": "platform-admin",
    "AWS_SESSION_TOKEN": "admin-session",
    "MLFLOW_TRACKING_PASSWORD": "admin-password",
    "MLOPS_FEAST_REGISTRY_URL": "postgresql+psycopg://admin@127.0.0.1:5432/feast",
    "MLOPS_HOME": "/home/platform/.mlops",
    "FSSPEC_S3_KEY": "platform-admin",
    "FEAST_USAGE": "False",
}


def test_a_tenant_process_inherits_no_platform_variable_from_its_caller(tmp_path: Path) -> None:
    """issue 30: the filter was written three times (the isolation gate, test_tenancy and
    test_cluster_fidelity, the last without FEAST_); one now, in the product. Positive control: what
    is not a platform variable is inherited and the tenant's own are set; forbidden path: none of the
    caller's platform variables survives; the filter broken on purpose (dropping nothing) lets the
    admin's session token through, and the check sees it."""
    stack = Stack(root=tmp_path, ports=Ports.from_base(15400))
    tenant = Tenant(name="fraud", access_key="fraud-key", secret_key="fraud-secret", password="fraud-pw")
    own = tenant_environment(stack, tenant)
    env = tenant_process_environment(stack, tenant, CALLER)
    assert env["PATH"] == CALLER["PATH"] and env["HOME"] == CALLER["HOME"]
    assert {key: env[key] for key in own} == own and env["AWS_ACCESS_KEY_ID"] == "fraud-key"
    assert platform_variables(CALLER) == {key: value for key, value in CALLER.items() if key not in ("PATH", "HOME")}
    leaked = {key for key in env if key.startswith(PLATFORM_PREFIXES) and key not in own}
    assert leaked == set()
    broken = {**CALLER, **own}
    assert {key for key in broken if key.startswith(PLATFORM_PREFIXES) and key not in own} >= {"AWS_SESSION_TOKEN"}
