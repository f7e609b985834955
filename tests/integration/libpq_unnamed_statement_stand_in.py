"""A stand-in for the Go driver lib/pq (Argo's workflow archive goes through it), speaking only
the message sequence lib/pq sends for a query with arguments, on a raw socket.

lib/pq v1.12 (conn.go: query -> prepareTo(q, "") -> st.exec): Parse of the unnamed statement,
Describe, Sync; it waits for ReadyForQuery; then Bind, Execute, Sync. Two Syncs: a pooler that
hands the server back at each ReadyForQuery outside a transaction can run the Bind on a server
that parsed another client's statement. No Go toolchain runs here, so the sequence is replayed
message for message; tests/integration/test_argo_archive_pooling.py checks it on PostgreSQL
directly first (the known case: it must answer what it asked).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cstring(text: str) -> bytes:
    return text.encode() + b"\0"


@dataclass
class LibPqStandIn:
    """One client connection; `prepare` and `execute` are lib/pq's two round trips."""

    host: str
    port: int
    user: str
    database: str
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        params = _cstring("user") + _cstring(self.user) + _cstring("database") + _cstring(self.database) + b"\0"
        body = struct.pack("!i", 196608) + params
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        self._until_ready(auth=True)

    def _read(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def _until_ready(self, auth: bool = False) -> list[tuple[bytes, bytes]]:
        """Every message up to ReadyForQuery; an ErrorResponse is returned, not raised."""
        received = []
        while True:
            kind = self._read(1)
            (length,) = struct.unpack("!i", self._read(4))
            body = self._read(length - 4)
            if auth and kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise ConnectionError("the stand-in speaks only trust authentication")
            received.append((kind, body))
            if kind == b"Z":
                return received

    def prepare(self, query: str) -> list[bytes]:
        """Parse(unnamed) + Describe(statement) + Sync, then wait (lib/pq's prepareTo)."""
        parse = _message(b"P", _cstring("") + _cstring(query) + struct.pack("!h", 0))
        describe = _message(b"D", b"S" + _cstring(""))
        self.sock.sendall(parse + describe + _message(b"S", b""))
        return [kind for kind, _ in self._until_ready()]

    def execute(self, *args: str) -> list[str] | str:
        """Bind(unnamed, text arguments) + Execute + Sync (lib/pq's st.exec): the first column of
        each row, or the server's error message."""
        values = b"".join(struct.pack("!i", len(a.encode())) + a.encode() for a in args)
        bind = _cstring("") + _cstring("") + struct.pack("!h", 0) + struct.pack("!h", len(args)) + values
        bind += struct.pack("!h", 0)
        execute = _message(b"E", _cstring("") + struct.pack("!i", 0))
        self.sock.sendall(_message(b"B", bind) + execute + _message(b"S", b""))
        rows: list[str] = []
        for kind, body in self._until_ready():
            if kind == b"E":
                fields = dict((part[:1], part[1:].decode()) for part in body.split(b"\0") if part)
                return fields.get(b"M", "error")
            if kind == b"D":
                (length,) = struct.unpack("!i", body[2:6])
                rows.append(body[6 : 6 + length].decode())
        return rows

    def close(self) -> None:
        self.sock.sendall(_message(b"X", b""))
        self.sock.close()
