"""issue 29: no rendered container carries a password on its command line.

A container's `command` and `args` become the process's argv, which every local user of the node
reads in /proc/<pid>/cmdline (and `kubectl get pod -o yaml` shows, after `$(VAR)` expansion, as
the spec). So no rendered command or arg may expand a secret-looking variable (`$(...PASSWORD...)`,
`$(...SECRET...)`, `$(...TOKEN...)`), hold a URI with a password in its userinfo, or hold a value
of a rendered Secret. The objects are every overlay and tenant as `kubectl kustomize` renders them
and the Katib patch (tests.manifests.test_secrets.rendered_objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.manifests.test_secrets import rendered_objects

SECRET_VARIABLE = re.compile(r"\$\(([A-Za-z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN)[A-Za-z0-9_]*)\)", re.IGNORECASE)
USERINFO_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


def containers(obj: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) wherever a pod template nests it."""
    if isinstance(obj, dict):
        for key in ("containers", "initContainers"):
            for container in obj.get(key) or []:
                if isinstance(container, dict) and "name" in container:
                    yield container
        for value in obj.values():
            yield from containers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from containers(value)


def secret_values(objects: list[dict[str, Any]]) -> set[str]:
    import base64

    values = set()
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        values |= {str(v) for v in (obj.get("stringData") or {}).values()}
        values |= {base64.b64decode(v).decode(errors="replace") for v in (obj.get("data") or {}).values()}
    return {value for value in values if len(value) >= 8}


def argv_leaks(objects: list[dict[str, Any]], source: str) -> list[str]:
    secrets = secret_values(objects)
    leaks = []
    for obj in objects:
        where = f"{source}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        for container in containers(obj):
            for word in [*(container.get("command") or []), *(container.get("args") or [])]:
                word = str(word)
                found = [m.group(1) for m in SECRET_VARIABLE.finditer(word)]
                found += ["a password in a URI"] if USERINFO_PASSWORD.search(word) else []
                found += ["a rendered Secret's value"] if any(value in word for value in secrets) else []
                leaks += [f"{where} container {container['name']}: {what} on argv" for what in found]
    return leaks


def _pod(args: list[str]) -> dict[str, Any]:
    container = {"name": "c", "command": ["server"], "args": args}
    template = {"spec": {"containers": [container]}}
    return {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": template}}


def test_the_argv_check_sees_each_kind_of_leak() -> None:
    """Positive control first, then each forbidden form, then the pre-fix MLflow line itself."""
    clean = "--backend-store-uri=postgresql://mlflow@pgbouncer:5432/mlflow"
    assert argv_leaks([_pod([clean, "--port=5000"])], "t") == []
    assert argv_leaks([_pod(["--token-file=/var/run/token"])], "t") == []
    assert argv_leaks([_pod(["--password=$(REDIS_PASSWORD)"])], "t")
    assert argv_leaks([_pod(["--key=$(aws_secret_access_key)"])], "t")
    assert argv_leaks([_pod(["redis://default:hunter2hunter2@redis:6379/0"])], "t")
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "correct-horse-battery"}}
    assert argv_leaks([secret, _pod(["--auth", "correct-horse-battery"])], "t")
    before_the_fix = "--backend-store-uri=postgresql://mlflow:$(MLFLOW_DB_PASSWORD)@pgbouncer.mlops.svc:5432/mlflow"
    assert argv_leaks([_pod([before_the_fix])], "t")


def test_no_rendered_container_has_a_password_on_its_command_line() -> None:
    """issue 29: the MLflow server's args held `$(MLFLOW_DB_PASSWORD)` in --backend-store-uri."""
    sources = rendered_objects()
    assert sum(1 for objects in sources.values() for obj in objects for _ in containers(obj)) > 10
    leaks = [leak for source, objects in sources.items() for leak in argv_leaks(objects, source)]
    assert leaks == []
