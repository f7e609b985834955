"""The stack's S3: SeaweedFS's `weed mini`, with the platform's buckets and their lifecycle.

One `weed` process runs master, volume, filer, admin and S3 servers on ports from the Stack's
`weed_first` on, loopback only, with the identities of `Stack.s3_identities` (the tenants add theirs
to the same s3.json, devstack.tenants), JWT on the HTTP side doors and mutual TLS on gRPC
(devstack.seaweed_security). Where user namespaces allow, it runs in a network namespace of its own
with only S3 published (devstack.private_network), so a local user cannot reach the side doors.
Ready means every bucket answers HeadBucket; then the bucket-setup Job's lifecycle is applied, and
the registry and serving buckets are versioned with object lock (components/platform/immutable.py),
an existing stack's too.

Identities change while it runs (`mlops tenant add`, devstack.tenants): `apply_identities` writes
s3.json and has weed reread it on SIGHUP (its reload hook for `-s3.config`) rather than restart
it, which took seconds each time. The file's last identity, GENERATION, is a key that may do
nothing, made anew on every write: the server has loaded the file once that key is known to it,
which is the readiness signal of a reload and the proof that an unchanged file is the one served.
A reload merges: it adds and updates identities but never drops one, so an identity taken out
still restarts the server.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ComponentError
from components.platform.buckets import BUCKETS
from devstack import process

if TYPE_CHECKING:
    from devstack.stack import Stack

__all__ = ["GENERATION", "apply_identities", "filer_path", "start_s3", "weed_argv"]

GENERATION = "devstack-config-generation"
"""The name of s3.json's last identity: a fresh key with no action, telling which write weed serves."""


def filer_path(bucket: str, key: str, version: str | None = None) -> str:
    """Where weed's filer keeps an S3 object: `/buckets/<bucket>/<key>`, or, in a versioned bucket
    (the registry's, components/platform/immutable.py), `/buckets/<bucket>/<key>.versions/v_<version>`
    (SeaweedFS 4.48: the plain path answers 404 there)."""
    return f"/buckets/{bucket}/{key}.versions/v_{version}" if version else f"/buckets/{bucket}/{key}"


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
    # tenants (devstack.tenants) add their identities to the file; a fresh generation key either way
    _write(folder / "s3.json", _identities(folder / "s3.json") or stack.s3_identities())
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

    buckets.ensure(client)  # the lifecycle and object lock the cluster's bucket-setup Job applies
    return seconds


def _identities(file: Path) -> list[dict[str, Any]] | None:
    """The file's identities without its generation key; None when there is no readable file."""
    try:
        identities: list[dict[str, Any]] = json.loads(file.read_text())["identities"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [identity for identity in identities if identity.get("name") != GENERATION]


def _generation(file: Path) -> dict[str, str] | None:
    """The credentials of the file's generation identity, if it has one."""
    try:
        identities = json.loads(file.read_text())["identities"]
        key: dict[str, str] = next(i["credentials"][0] for i in identities if i.get("name") == GENERATION)
    except (OSError, ValueError, KeyError, TypeError, IndexError, StopIteration):
        return None
    return key


def _write(file: Path, identities: list[dict[str, Any]]) -> None:
    """s3.json with `identities` and, last, a new generation key that may do nothing."""
    key = {"accessKey": f"generation-{secrets.token_hex(8)}", "secretKey": secrets.token_urlsafe(24)}
    generation = {"name": GENERATION, "credentials": [key], "actions": []}
    process.write_private(file, json.dumps({"identities": [*identities, generation]}, indent=2))


def _serves(stack: Stack, generation: dict[str, str] | None) -> bool:
    """Whether the running server knows the generation key (so it serves that write of the file):
    known, the key is refused for want of a permission; unknown, as no key at all."""
    from botocore.exceptions import ClientError

    if generation is None:
        return False
    try:
        stack.s3_client(generation["accessKey"], generation["secretKey"]).list_objects_v2(Bucket=BUCKETS[0], MaxKeys=1)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "AccessDenied":
            return True
        if code == "InvalidAccessKeyId":
            return False
        raise
    raise ComponentError(
        "dev",
        f"SeaweedFS let its generation key {generation['accessKey']}, which has no action, list bucket {BUCKETS[0]}",
        f"give {GENERATION} no actions in {stack.folder('s3') / 's3.json'}, then restart the object store",
    )


def apply_identities(stack: Stack, identities: list[dict[str, Any]], timeout: float = 30) -> str:
    """Make `identities` the S3 server's (written to s3.json, loaded if it runs). Returns what it
    took: "unchanged" (the server already serves this file), "written" (not running: read at
    start), "reloaded" (SIGHUP, ready once the new generation key is known) or "restarted" (an
    identity was taken out, which a reload keeps, or the server's state was not the file's)."""
    file = stack.folder("s3") / "s3.json"
    before = _identities(file)
    running = stack.running("s3")
    current = running and _serves(stack, _generation(file))  # the server serves the file as it is
    if current and before == identities:
        return "unchanged"
    _write(file, identities)
    if not running:
        return "written"
    kept = before is not None and {i["name"] for i in before} <= {i["name"] for i in identities}
    if current and kept:
        process.reload(stack.pid_file("s3"))  # weed itself (the private network's child, if any)
        _await_generation(stack, file, timeout, "SIGHUP")
        return "reloaded"
    stack.down(("s3",))
    stack.up(("s3",))
    _await_generation(stack, file, timeout, "a restart")  # the port answers before the identities are read
    return "restarted"


def _await_generation(stack: Stack, file: Path, timeout: float, after: str) -> None:
    """Wait until the running server serves `file` (knows its generation key)."""
    generation, deadline = _generation(file), time.monotonic() + timeout
    while not _serves(stack, generation):
        if time.monotonic() > deadline or not stack.running("s3"):
            raise ComponentError(
                "dev",
                f"SeaweedFS did not load {file} within {timeout:.0f} s of {after}:\n{process.tail(stack.log('s3'))}",
                "mlops dev down && mlops dev up (a restart reads the file)",
            )
        time.sleep(0.05)
