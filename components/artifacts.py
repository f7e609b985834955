"""Read and write artifacts at a local path or an `s3://` URI, atomically, with hashing.

A half-written artifact is worse than none: a retried step or a downstream reader must see
either the old bytes or the new ones. Local writes go to a temporary file in the same folder
and are renamed into place; a folder is swapped with its replacement in one rename (Linux's
RENAME_EXCHANGE), so a reader never finds it missing. S3 writes complete atomically (a PUT,
or a multipart upload that only becomes visible when completed).

A writer killed mid-write leaves debris: a temporary file, or an incomplete multipart upload.
The next writer of the same target removes it (temporary names carry the host and pid, so a
live writer's file is never touched; a key has one writer at a time, the retry after the
attempt that died), and a bucket lifecycle rule (`AbortIncompleteMultipartUpload`, in
manifests/ and the devstack) aborts what no later writer comes back for.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

__all__ = [
    "CHUNK",
    "abort_stale_uploads",
    "atomic_dir",
    "atomic_path",
    "exchange",
    "exists",
    "fetched",
    "is_s3",
    "local_path",
    "pid_alive",
    "read_bytes",
    "read_json",
    "s3_client",
    "sha256_file",
    "sha256_file_bytes",
    "sha256_uri",
    "sweep_debris",
    "write_bytes",
    "write_json",
    "write_parquet",
]

CHUNK = 1 << 20


def is_s3(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def local_path(uri: str | os.PathLike[str]) -> Path:
    """A local path from a plain path or a `file://` URI."""
    text = str(uri)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    return Path(text)


def s3_client() -> Any:
    """A boto3 S3 client that honours the platform's endpoint conventions.

    Private object stores (MinIO, SeaweedFS, Ceph RGW) need an explicit endpoint and
    signature v4; without `AWS_METADATA_SERVICE_TIMEOUT`, boto3 waits on the cloud metadata
    service that does not exist here and hangs silently.
    """
    import boto3
    from botocore.config import Config

    os.environ.setdefault("AWS_METADATA_SERVICE_TIMEOUT", "1")
    os.environ.setdefault("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "1")
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _writer_tag() -> str:
    """Who writes a temporary file: host and pid, so a later writer can tell a dead one's debris."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (signal 0: no signal is sent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_debris(final: Path) -> list[Path]:
    """Remove what writers of `final` that died on this host left beside it; returns what went.

    Only names this module makes (`.<name>.<host>-<pid>.<random>...`) are candidates, and only
    when that pid no longer runs here; another host's files are left to it.
    """
    host = socket.gethostname().replace(".", "_")
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for candidate in final.parent.glob(f".{final.name}.{host}-*"):
        tag = candidate.name[len(final.name) + 2 :].split(".", 1)[0]
        pid_text = tag.rpartition("-")[2]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def abort_stale_uploads(client: Any, bucket: str, key: str) -> int:
    """Abort incomplete multipart uploads of exactly `key`: the debris of an attempt that died."""
    aborted = 0
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    for upload in listing.get("Uploads", []):
        if upload["Key"] == key:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
    return aborted


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary local path; on success it becomes `target` in one step.

    For an S3 target the temporary file is uploaded once complete. On error nothing is left
    at `target`, and any previous content there is untouched.
    """
    text = str(target)
    if is_s3(text):
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / ("artifact" + suffix)
            yield tmp_path
            bucket, key = _split_s3(text)
            client = s3_client()
            abort_stale_uploads(client, bucket, key)
            client.upload_file(str(tmp_path), bucket, key)
        return
    final = local_path(text)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_debris(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{_writer_tag()}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic rename (Linux renameat2 RENAME_EXCHANGE); False where the
    kernel, libc or filesystem cannot, so the caller falls back."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `target` whole (local paths only).

    The swap is one rename: readers see the old folder or the new one, never none.
    """
    final = local_path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_debris(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{_writer_tag()}.", dir=final.parent))
    try:
        yield tmp
        if final.exists() and exchange(tmp, final):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous folder
        elif final.exists():
            old = final.with_name(f".{final.name}.{_writer_tag()}.old")
            os.replace(final, old)  # no exchange here: a brief moment without the folder
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: str | os.PathLike[str], payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes(target, text.encode())


def write_parquet(target: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)


def exists(uri: str | os.PathLike[str]) -> bool:
    text = str(uri)
    if is_s3(text):
        from botocore.exceptions import ClientError

        bucket, key = _split_s3(text)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 404 or error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise  # a store that fails or refuses is not "no such object" (components.errors classifies it)
        return True
    return local_path(text).exists()


@contextlib.contextmanager
def fetched(uri: str | os.PathLike[str]) -> Iterator[Path]:
    """A local path holding the artifact's bytes: the file itself, or a downloaded copy."""
    text = str(uri)
    if not is_s3(text):
        yield local_path(text)
        return
    bucket, key = _split_s3(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(key).name
        s3_client().download_file(bucket, key, str(path))
        yield path


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    with fetched(uri) as path:
        return path.read_bytes()


def read_json(uri: str | os.PathLike[str]) -> Any:
    return json.loads(read_bytes(uri))


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_uri(uri: str | os.PathLike[str]) -> str:
    with fetched(uri) as path:
        return sha256_file(path)


def sha256_file_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
