"""components/platform/pushgateway_client.py: pushes carry the tenant's basic-auth credentials when the
environment holds them (the loopback's per-tenant Pushgateways ask for them, issue 29), and go
plain when it holds none (the cluster's, admitted by NetworkPolicy)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from components.errors import ComponentError
from components.platform import pushgateway_client
from components.platform.settings import PUSHGATEWAY_CREDENTIALS
from tests.loopback_http import QuietHandler, serving

USER, PASSWORD = PUSHGATEWAY_CREDENTIALS


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[str | None]]]:
    """A loopback stand-in that records each push's Authorization header."""
    seen: list[str | None] = []

    class Handler(QuietHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

    with serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_port}", seen


def push(url: str, env: dict[str, str]) -> None:
    registry = CollectorRegistry()
    Gauge("mlops_probe", "probe", registry=registry).set(1)
    push_to_gateway(url, job="probe", registry=registry, handler=pushgateway_client.handler(env))


def test_a_push_carries_the_tenants_credentials_and_none_without_them(
    gateway: tuple[str, list[str | None]],
) -> None:
    url, seen = gateway
    push(url, {})
    push(url, {USER: "pricing", PASSWORD: "s3cret"})
    assert seen[0] is None, "no credentials in the environment: a plain push (the cluster's)"
    assert seen[1] == "Basic " + base64.b64encode(b"pricing:s3cret").decode()


def test_one_credential_without_the_other_is_refused_naming_the_missing_one() -> None:
    with pytest.raises(ComponentError) as refused:
        pushgateway_client.handler({USER: "pricing"})
    assert PASSWORD in str(refused.value) and "mlops tenant env" in str(refused.value)


@pytest.mark.parametrize(("status", "transient"), [(401, False), (403, False), (400, False), (429, True), (503, True)])
def test_a_refused_push_is_permanent_and_an_overloaded_gateway_transient(status: int, transient: bool) -> None:
    """Issue 29: a 401 from another tenant's (or its own, misconfigured) gateway was retried as
    transient by the drift step; drift and notify now share one push with one classification."""
    from components.errors import TransientError

    class Refusing(QuietHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.end_headers()

    registry = CollectorRegistry()
    Gauge("mlops_drift_share", "share", registry=registry).set(0.5)
    with serving(Refusing) as server, pytest.raises(ComponentError, match=f"HTTP {status}|did not take") as refused:
        pushgateway_client.push(
            "drift", f"http://127.0.0.1:{server.server_port}", job="j", grouping={"pipeline": "fraud"},
            registry=registry, what="the drift figures",
        )  # fmt: skip
    assert isinstance(refused.value, TransientError) is transient, refused.value
    assert "the drift figures" in str(refused.value)
