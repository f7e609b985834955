"""Run a server in a network of its own and publish one of its Unix sockets on a loopback port.

SeaweedFS serves a master, a volume server, a filer and an admin server beside its S3 API, each
on its own HTTP and gRPC ports, and none of them asks for an S3 key: on a shared loopback any
local process could `GET /col/delete?collection=models` on the master and drop every tenant's
objects. Here `weed` runs in a new network namespace (an unprivileged user namespace maps us to
root in it, so no privilege is needed), where those ports are reachable only by weed itself.
The S3 API listens on a Unix socket in the stack's 0700 folder, and this process, outside,
forwards the published TCP port to it: the S3 port is the only way in.

    python -m devstack.private_network --listen 127.0.0.1:9000 --socket s3.sock -- weed mini ...

`available()` says whether this kernel lets us create the namespaces; where it does not, the
stack runs weed on the host's loopback and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import functools
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

__all__ = ["UNSHARE", "available", "main"]

UNSHARE = ("unshare", "--user", "--map-root-user", "--net")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


@functools.cache
def available() -> bool:
    """Whether an unprivileged user and network namespace can be created here."""
    try:
        probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _loopback_up() -> None:
    """A new network namespace has only `lo`, and it is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(handle, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(handle, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _forward(listen: socket.socket, target: Path, server: subprocess.Popen[bytes]) -> None:
    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(str(target))
        except OSError:  # the server is not listening yet (or any more): the client sees a reset
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    forwarder = await asyncio.start_server(connection, sock=listen, limit=1 << 16)
    async with forwarder:
        while server.poll() is None:
            await asyncio.sleep(0.5)
    sys.exit(f"the server behind {target} exited with {server.returncode}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--listen", help="host:port to publish (outside the namespace)")
    parser.add_argument("--socket", type=Path, help="the server's Unix socket to forward to")
    parser.add_argument("--inside", action="store_true", help="(internal) bring lo up, then exec the server")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.inside:
        _loopback_up()
        os.execvp(command[0], command)
    host, _, port = args.listen.rpartition(":")
    # Listen before the server starts, so the port is ours (a clash fails here, loudly).
    listen = socket.create_server((host, int(port)), reuse_port=False)
    args.socket.unlink(missing_ok=True)
    server = subprocess.Popen([*UNSHARE, sys.executable, "-m", "devstack.private_network", "--inside", "--", *command])

    def stop(*_: object) -> None:
        # weed sits on SIGTERM for a long time: give it a moment, then kill it, then go
        server.terminate()
        try:
            server.wait(timeout=2)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    asyncio.run(_forward(listen, args.socket, server))


if __name__ == "__main__":
    main()
