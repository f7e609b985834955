"""The stack's S3: SeaweedFS's `weed mini`, with the platform's buckets and their lifecycle.

One `weed` process runs master, volume, filer, admin and S3 servers on ports from the Stack's
`weed_first` on, loopback only, with the identities of `Stack.s3_identities` (the tenants add theirs
to the same s3.json, devstack.tenants), JWT on the HTTP side doors and mutual TLS on gRPC
(devstack.seaweed_security). Where user namespaces allow, it runs in a network namespace of its own
with only S3 published (devstack.private_network), so a local user cannot reach the side doors.
Ready means every bucket answers HeadBucket; then the bucket-setup Job's lifecycle is applied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from components.platform.buckets import BUCKETS
from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["start_s3", "weed_argv"]


def weed_argv(stack: Stack, folder: Path) -> list[str]:
    """`weed mini` on the stack's ports, data and sockets in `folder`, the buckets created."""
    weed = Path(sys.executable).parent / "weed"
    binary = str(weed) if weed.exists() else process.find_binary("weed")
    p = stack.ports
    return [
        binary,
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p.weed(0)}",
        f"-master.port.grpc={p.weed(1)}",
        f"-volume.port={p.weed(2)}",
        f"-volume.port.grpc={p.weed(3)}",
        f"-volume.port.public={p.weed(2)}",
        f"-filer.port={p.weed(4)}",
        f"-filer.port.grpc={p.weed(5)}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.port={p.s3}",
        f"-s3.port.grpc={p.weed(6)}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={folder / 's3.sock'}",
        f"-admin.port={p.weed(7)}",
        f"-admin.port.grpc={p.weed(7) + 10_000}",
        "-admin.ui=false",
        f"-debug.port={p.weed(8)}",
        "-webdav=false",
        "-master.telemetry=false",
        "-s3.iam=false",  # its embedded IAM API (users, access keys) on the S3 port: not used here
        f"-s3.config={folder / 's3.json'}",
        f"-bucket={','.join(BUCKETS)}",
    ]


def start_s3(stack: Stack) -> float:
    """Start SeaweedFS (identities and security files written first), wait for the buckets; seconds."""
    folder = stack.folder("s3")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    identities = {"identities": stack.s3_identities()}
    if not (folder / "s3.json").exists():  # tenants (devstack.tenants) add their identities here
        process.write_private(folder / "s3.json", json.dumps(identities, indent=2))
    folder.chmod(0o700)
    from devstack.seaweed_security import write_security

    write_security(folder)  # JWT on the HTTP side doors, mutual TLS on gRPC (weed reads it from cwd)
    argv = weed_argv(stack, folder)
    from devstack import private_network

    if stack.s3_private_network and private_network.available():
        # weed's master, volume, filer and admin ports in a network of their own; only S3 is published
        argv = [
            sys.executable,
            "-m",
            "devstack.private_network",
            f"--listen=127.0.0.1:{stack.ports.s3}",
            f"--socket={folder / 's3.sock'}",
            "--",
            *argv,
        ]
    elif stack.s3_private_network:
        print(
            "warning: no user namespaces here (unshare --user --net failed): SeaweedFS's master,"
            " volume and filer ports stay on the host's loopback, where any local user reaches them",
            file=sys.stderr,
        )
    pid = process.start(argv, stack.log("s3"), stack.pid_file("s3"), cwd=folder)
    client = stack.s3_client()

    def buckets_exist() -> bool:
        # The port opens before the buckets exist: wait on HeadBucket, not on the port.
        for bucket in BUCKETS:
            client.head_bucket(Bucket=bucket)
        return True

    seconds = process.wait_until(buckets_exist, what="SeaweedFS S3", log=stack.log("s3"), pid=pid, timeout=60)
    from components.platform import buckets

    buckets.ensure(client)  # the lifecycle the cluster's bucket-setup Job applies
    return seconds
