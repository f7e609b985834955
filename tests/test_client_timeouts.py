"""Every network client gives up: a server that accepts the connection and never answers.

A stand-in for a stuck port-forward or an overloaded API server (no Kubernetes or Argo server
runs here): a socket that accepts and stays silent. Without request timeouts both clients
waited forever; with them the command fails in seconds, as a transient error (retry helps).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.errors import TransientError
from tests.conftest import write_kubeconfig


@pytest.fixture()
def silent_server() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_mock_silent_kubernetes_api_fails_transiently_within_the_timeout(
    silent_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops import kube

    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 1.0))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", silent_server)
    cluster = kube.Cluster.from_kubeconfig(kubeconfig)
    cluster.api.configuration.retries = 0  # the client's own retries would multiply the wait
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not answer"):
        cluster.get_inference_service("fraud", "fraud-detector")
    assert time.monotonic() - started < 10


def test_mock_silent_argo_server_fails_transiently_within_the_timeout(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops import argo_client

    monkeypatch.setattr(argo_client, "REQUEST_TIMEOUT", (1.0, 1.0))
    connection = argo_client.Connection(
        url=f"http://127.0.0.1:{silent_server}",
        token="t",
        namespace="fraud",
        verify_ssl=False,
        ui_base=f"http://127.0.0.1:{silent_server}",
    )
    service = argo_client._service(connection)
    started = time.monotonic()
    with pytest.raises(TransientError, match="cannot reach the Argo server"):
        argo_client._call(connection, "list workflows", service.list_workflows, namespace="fraud")
    assert time.monotonic() - started < 10
