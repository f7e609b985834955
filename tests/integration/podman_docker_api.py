"""podman's Docker-compatible API, as kfp.local's DockerRunner meets it in the fidelity test.

`podman_docker_service` runs `podman system service` on a Unix socket of its own, every container
it starts given `variables` (the containers.conf `env` list): kfp.local ignores the IR's Kubernetes
platform spec (configMapAsEnv, secretAsEnv), which a kubelet would apply, so the engine applies it.

`removed_container_is_not_found` makes one answer of podman's read as Docker's: for a container
already gone (DockerRunner starts them with auto_remove, and a task that exits at once, as the
exit handler does, is removed before its logs are asked for), Docker answers 404 and podman 500
"no such container". DockerRunner handles the 404 (docker.errors.NotFound) as Docker's race and
nothing else, so with podman the same race failed the test now and then.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = ["podman_docker_service", "removed_container_is_not_found"]


@contextmanager
def podman_docker_service(folder: Path, variables: dict[str, str]) -> Iterator[str]:
    """The service's DOCKER_HOST (unix://...), up until the block ends."""
    system = Path("/etc/containers/containers.conf")
    base = system.read_text() if system.exists() else ""
    env_line = "env = [" + ", ".join(json.dumps(f"{k}={v}") for k, v in sorted(variables.items())) + "]\n"
    conf = (
        base.replace("[containers]\n", "[containers]\n" + env_line, 1)
        if "[containers]" in base
        else ("[containers]\n" + env_line + base)
    )
    (folder / "containers.conf").write_text(conf)
    socket = folder / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        env={**os.environ, "CONTAINERS_CONF": str(folder / "containers.conf")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert time.monotonic() < deadline and service.poll() is None, "podman system service did not start"
            time.sleep(0.1)
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


def removed_container_is_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """For this test: podman's 500 "no such container" raised as the NotFound Docker's 404 gives."""
    import docker.api.client
    import docker.errors

    original = docker.api.client.create_api_error_from_http_exception

    def as_docker_answers(error: Any) -> NoReturn:
        response = error.response
        if response is not None and response.status_code == 500 and "no such container" in response.text:
            raise docker.errors.NotFound(error, response=response, explanation=response.text) from error
        original(error)
        raise AssertionError("docker's create_api_error_from_http_exception returned")  # it always raises

    monkeypatch.setattr(docker.api.client, "create_api_error_from_http_exception", as_docker_answers)
