"""A test's HTTP stand-in on a loopback port: the handler class a test writes, served from a daemon
thread for as long as the test needs it, then shut down and its socket closed (issue 30: the tests
started and stopped such a server in eleven places, each by hand)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["QuietHandler", "serving", "start"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to the test's stderr."""

    def log_message(self, *args: Any) -> None:
        pass


def start(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """`handler` served on 127.0.0.1 at a free port from a daemon thread; the caller shuts it down."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """`handler` served (start) for the block; shut down and closed after it, however it ends."""
    server = start(handler)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
