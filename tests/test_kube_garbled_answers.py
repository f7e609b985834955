"""An API server answer that is not JSON (security review LOW 8): promote's Kubernetes calls that read
the body themselves (the NetworkPolicy's create/replace/read, Gatekeeper's webhook configuration)
raised json's JSONDecodeError, after the AuthorizationPolicy was written: no message, and rollout's
put-back logic never ran. Now it is a TransientError (exit 75) that says no definite answer came, so
rollout says nothing was put back and why (mlops/rollout_target.py).

The server is a loopback stand-in answering 200 with JSON (the control) or with an HTML page, reached
through the real kubernetes client from a kubeconfig.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from components.errors import TRANSIENT_EXIT_CODE, TransientError
from mlops.kube import Cluster, refused_outright
from tests.conftest import write_kubeconfig
from tests.loopback_http import QuietHandler, serving

POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "m-callers", "namespace": "fraud"},
    "spec": {"podSelector": {}},
}


class Answering(QuietHandler):
    """200 with `body` for every call, after reading the request's body."""

    body: ClassVar[bytes] = b""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with serving(Answering) as server:
        yield Cluster.from_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", server.server_port))


CALLS: list[tuple[str, Callable[[Cluster], Any]]] = [
    ("apply NetworkPolicy fraud/m-callers", lambda c: c.apply_authorization(POLICY, live=None)),
    ("read NetworkPolicy fraud/m-callers", lambda c: c.read_authorization("NetworkPolicy", "fraud", "m-callers")),
    ("read ValidatingWebhookConfiguration", lambda c: c.gatekeeper_webhooks()),
]


@pytest.mark.parametrize(("what", "call"), CALLS, ids=[what for what, _ in CALLS])
def test_a_body_that_is_not_json_is_transient_with_no_definite_answer(
    cluster: Cluster, what: str, call: Callable[[Cluster], Any]
) -> None:
    stored = {**POLICY, "metadata": {**POLICY["metadata"], "resourceVersion": "7"}}  # type: ignore[dict-item]
    Answering.body = json.dumps(stored).encode()
    assert call(cluster) == stored  # positive control: the server's JSON, as read
    Answering.body = b"<html><body>502 Bad Gateway</body></html>"
    with pytest.raises(TransientError) as raised:
        call(cluster)
    error = raised.value
    assert error.exit_code == TRANSIENT_EXIT_CODE and what in error.problem, error.problem
    assert "not its JSON" in error.problem and "whether it was stored is unknown" in error.problem
    assert not refused_outright(error)  # so rollout puts nothing back and says so
