"""fsspec's `s3://` for Feast's file offline store, served by pyarrow's own S3 client.

Feast reads a FileSource on S3 through dask, and dask through fsspec, which expects the
`s3fs` package. s3fs needs aiobotocore, which pins an older botocore than the rest of this
stack resolves (boto3 1.44; see constraints.txt), so it cannot be installed beside it. pyarrow
ships a complete S3 client; fsspec's ArrowFSWrapper turns it into the filesystem dask asks
for. Registered only when s3fs is absent, so an environment that has s3fs keeps it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from fsspec.implementations.arrow import ArrowFSWrapper

__all__ = ["ArrowS3FileSystem", "register"]


class ArrowS3FileSystem(ArrowFSWrapper):  # type: ignore[misc]
    """What dask needs of s3fs, over pyarrow.fs.S3FileSystem; takes s3fs's keyword arguments."""

    protocol = ("s3", "s3a")

    def __init__(
        self,
        *args: Any,
        client_kwargs: dict[str, Any] | None = None,
        key: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        from pyarrow import fs

        endpoint = (
            endpoint_url
            or (client_kwargs or {}).get("endpoint_url")
            or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        arrow = fs.S3FileSystem(
            access_key=key or os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=secret or os.environ.get("AWS_SECRET_ACCESS_KEY"),
            session_token=token,
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            endpoint_override=endpoint,
            connect_timeout=5,
            request_timeout=60,
        )
        kwargs.pop("anon", None)
        super().__init__(arrow, **kwargs)


def register() -> None:
    """Serve `s3://` in fsspec with pyarrow unless s3fs is installed (idempotent)."""
    if importlib.util.find_spec("s3fs") is not None:
        return
    import fsspec

    fsspec.register_implementation("s3", ArrowS3FileSystem, clobber=True)
    fsspec.register_implementation("s3a", ArrowS3FileSystem, clobber=True)
