"""issue 29 on a running stack: no devstack process carries a password on its command line, and
the tracking server answers 403 or 404, never 500, to a request it cannot serve for lack of rights.

Both run on the session's tenancy stack (tests/integration/conftest.py `tenancy_stack`, MLflow's
basic-auth app with components.platform.tracking_auth), with every declared tenant added: PostgreSQL,
PgBouncer, the platform's and each tenant's Redis, SeaweedFS and MLflow with its workers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.stack import Stack
from devstack.tenants import get_tenant
from tests.integration.conftest import DECLARED_TENANTS as TENANTS

pytestmark = pytest.mark.integration


def stack_secrets(stack: Stack) -> dict[str, str]:
    found = {
        "db_password": stack.db_password,
        "redis_admin_password": stack.redis_admin_password,
        "admin_password": stack.admin_password,
        "secret_key": stack.secret_key,
        "puller_secret_key": stack.puller_secret_key,
    }
    for name in TENANTS:
        tenant = get_tenant(stack, name)
        found |= {f"{name} password": tenant.password, f"{name} secret_key": tenant.secret_key}
    return found


def command_lines() -> dict[int, str]:
    """Every process's argv as /proc shows it to any local user (NULs as spaces)."""
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
    return lines


def descendants(roots: set[int]) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found = set(roots)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def leaks(secrets: dict[str, str], lines: dict[int, str]) -> list[str]:
    return [f"pid {pid}: {what}" for pid, line in lines.items() for what, value in secrets.items() if value in line]


def test_no_devstack_process_has_a_password_on_its_command_line(tenants_stack: Stack) -> None:
    """issue 29: MLflow's --backend-store-uri (and the schema migration's argv) held the database
    password. Positive control first (the stack's processes are seen, MLflow's workers included),
    then every process on the machine, then a process given a password on purpose is caught."""
    pid_files = (tenants_stack.root / "run").glob("*.pid")
    roots = {int(path.read_text().split()[0]) for path in pid_files if path.read_text().strip()}
    stack_pids = descendants(roots)
    lines = command_lines()
    seen = " ".join(lines.get(pid, "") for pid in stack_pids)
    for program in ("postgres", "pgbouncer", "redis-server", "weed", "mlflow"):
        assert program in seen, (program, sorted(stack_pids))
    assert "--backend-store-uri" in seen
    secrets = stack_secrets(tenants_stack)
    assert leaks(secrets, lines) == []
    # `read` is the shell's builtin: the planted process never forks (a child caught between its fork and
    # its exec still showed the parent's command line, a second leak the check rightly reported)
    planted_argv = ["sh", "-c", "read line", "planted", f"--password={tenants_stack.db_password}"]
    with subprocess.Popen(planted_argv, stdin=subprocess.PIPE) as planted:
        try:
            assert leaks(secrets, command_lines()) == [f"pid {planted.pid}: db_password"]
        finally:
            planted.kill()


def test_an_artifact_the_server_has_no_rights_to_is_403_not_500(tenants_stack: Stack) -> None:
    """issue 29: GET /model-versions/get-artifact for a version of the tenant's own model whose
    source points at a store the server holds no credentials for ended in NoCredentialsError and a
    500 (MLflowServerErrors pages on-call). Positive control: the same request for a version the
    tenant cannot read is MLflow's own 403; then the no-rights version; then /get-artifact."""
    import requests

    pricing = get_tenant(tenants_stack, "pricing")
    auth = (pricing.name, pricing.password)
    api = f"{tenants_stack.tracking_uri}/api/2.0/mlflow"

    def post(path: str, body: dict[str, str]) -> requests.Response:
        return requests.post(f"{api}/{path}", json=body, auth=auth, timeout=30)

    name = "pricing-rights-probe"
    post("registered-models/create", {"name": name})
    created = post("model-versions/create", {"name": name, "source": "s3://models/fraud/elsewhere"})
    assert created.status_code == 200, created.text
    version = created.json()["model_version"]["version"]
    fraud_admin = requests.get(
        f"{tenants_stack.tracking_uri}/model-versions/get-artifact",
        params={"name": "fraud-detector", "version": "1", "path": "MLmodel"},
        auth=auth,
        timeout=30,
    )
    assert fraud_admin.status_code in (403, 404), fraud_admin.text
    answer = requests.get(
        f"{tenants_stack.tracking_uri}/model-versions/get-artifact",
        params={"name": name, "version": version, "path": "MLmodel"},
        auth=auth,
        timeout=30,
    )
    assert answer.status_code == 403, (answer.status_code, answer.text[:500])
    assert answer.json()["error_code"] == "PERMISSION_DENIED"
    assert "streams artifacts only from stores it holds rights to" in answer.json()["message"]
    assert "NoCredentialsError" not in answer.text and "Traceback" not in answer.text
