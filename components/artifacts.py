"""Read and write artifacts at a local path or an `s3://` URI, atomically, with hashing.

A half-written artifact is worse than none: a retried step or a downstream reader must see
either the old bytes or the new ones. Local writes go to a temporary file in the same folder
and are renamed into place; S3 writes are single PUTs, which the object store makes atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

CHUNK = 1 << 20


def is_s3(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def local_path(uri: str | os.PathLike[str]) -> Path:
    """A local path from a plain path or a `file://` URI."""
    text = str(uri)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    return Path(text)


def _s3_client() -> Any:
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


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary local path; on success it becomes `target` in one step.

    For an S3 target the temporary file is uploaded with one PUT. On error nothing is left
    at `target`, and any previous content there is untouched.
    """
    text = str(target)
    if is_s3(text):
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / ("artifact" + suffix)
            yield tmp_path
            bucket, key = _split_s3(text)
            _s3_client().upload_file(str(tmp_path), bucket, key)
        return
    final = local_path(text)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `target` whole (local paths only)."""
    final = local_path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
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
        bucket, key = _split_s3(text)
        try:
            _s3_client().head_object(Bucket=bucket, Key=key)
        except Exception:
            return False
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
        _s3_client().download_file(bucket, key, str(path))
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
