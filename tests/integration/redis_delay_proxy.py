"""A TCP proxy in front of the real Redis that holds back large pipelines.

The scoring transformer's join sends one pipeline of HMGETs per request, in one burst. Through this
proxy, a burst (bytes a connection sends with no pause over 50 ms) that passes `large_bytes` goes on
to Redis one 16 KiB chunk every `delay` seconds from there, so its replies trickle in late; smaller
bursts pass untouched. Each hold stays under the transformer's Redis read timeout (2 s), so the large
request is slow, not failed. So a test can keep one large request joining, for as long as it says,
against the real store, and see whether the transformer answers a small one meanwhile (issue 29:
the join ran on the event loop).
"""

from __future__ import annotations

import socket
import threading
import time


class RedisDelayProxy:
    """Listens on 127.0.0.1 (`port`), forwards to `upstream` ("host:port"); `delayed` counts the holds."""

    def __init__(self, upstream: str, *, large_bytes: int, delay: float) -> None:
        host, _, port = upstream.partition(":")
        self.upstream = (host or "127.0.0.1", int(port or 6379))
        self.large_bytes, self.delay = large_bytes, delay
        self.large_seen = threading.Event()
        """Set when a large burst reached the proxy: its reply is being held from then on."""
        self.delayed = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        burst, last = 0, 0.0
        with client, server:
            while chunk := _recv(client):
                now = time.monotonic()
                if now - last > 0.05:  # a new burst: a new request's pipeline
                    burst = 0
                burst, last = burst + len(chunk), now
                if burst >= self.large_bytes:
                    self.large_seen.set()
                    time.sleep(self.delay)
                    self.delayed, last = self.delayed + 1, time.monotonic()
                server.sendall(chunk)

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(server):
            try:
                client.sendall(chunk)
            except OSError:
                return


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(16384)
    except OSError:
        return b""
