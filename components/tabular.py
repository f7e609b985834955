"""Loading tabular inputs with errors that say what is wrong with the file."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from components import artifacts
from components.errors import ComponentError

__all__ = ["Table", "read_parquet", "read_table", "require_columns"]


def read_parquet(step: str, uri: str | os.PathLike[str], what: str) -> pd.DataFrame:
    """Read a Parquet dataset, turning each way it can be unusable into a ComponentError."""
    return read_table(step, uri, what).frame


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    digest: str
    """The hex digest of exactly the bytes parsed (empty when none was asked for)."""


def read_table(step: str, uri: str | os.PathLike[str], what: str, *, hash_with: str = "") -> Table:
    """Read a Parquet (or `.csv`) dataset once: the frame and, with `hash_with` ("sha256", "md5"),
    the digest of the very bytes parsed, so the data is fetched once and what is recorded is what
    was read. Each way the file can be unusable is a ComponentError (permanent: exit 2)."""
    if not artifacts.exists(uri):
        raise ComponentError(step, f"{what} not found at {uri}", "check the path or URI; run the upstream step first")
    csv = str(uri).endswith(".csv")
    with artifacts.fetched(uri) as path:
        if path.is_file() and path.stat().st_size == 0:
            raise ComponentError(
                step,
                f"{what} at {uri} is an empty file (0 bytes)",
                "the upstream export was cut short: re-run it and check its log",
            )
        digest = _file_digest(path, hash_with) if hash_with else ""
        try:
            frame = pd.read_csv(path) if csv else pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as error:  # pandas parse errors are ValueErrors
            kind = "CSV" if csv else "Parquet"
            raise ComponentError(
                step,
                f"{what} at {uri} is not a readable {kind} file ({error})",
                "export the dataset as Parquet (pandas: DataFrame.to_parquet) and point the step at it",
            ) from error
    if frame.empty:
        raise ComponentError(
            step, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
        )
    return Table(frame=frame, digest=digest)


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def require_columns(
    step: str,
    frame: pd.DataFrame,
    columns: list[str],
    what: str,
    *,
    kind: str = "column(s)",
    fix: str = "add the columns upstream, or change the pipeline config to the columns the data has",
) -> None:
    """Refuse (permanently) a frame without every one of `columns`, naming what it lacks and has."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ComponentError(step, f"{what} lacks {kind} {missing}; it has {sorted(frame.columns)}", fix)
