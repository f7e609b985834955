"""Loading tabular inputs with errors that say what is wrong with the file."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa

from components import artifacts
from components.errors import ComponentError


def read_parquet(step: str, uri: str | os.PathLike[str], what: str) -> pd.DataFrame:
    """Read a Parquet dataset, turning each way it can be unusable into a ComponentError."""
    if not artifacts.exists(uri):
        raise ComponentError(step, f"{what} not found at {uri}", "check the path or URI; run the upstream step first")
    with artifacts.fetched(uri) as path:
        if path.is_file() and path.stat().st_size == 0:
            raise ComponentError(
                step,
                f"{what} at {uri} is an empty file (0 bytes)",
                "the upstream export was cut short: re-run it and check its log",
            )
        try:
            frame = pd.read_parquet(path)
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as error:
            raise ComponentError(
                step,
                f"{what} at {uri} is not a readable Parquet file ({error})",
                "export the dataset as Parquet (pandas: DataFrame.to_parquet) and point the step at it",
            ) from error
    if frame.empty:
        raise ComponentError(
            step, f"{what} at {uri} has no rows", "the upstream extract selected nothing: check its window"
        )
    return frame


def require_columns(step: str, frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ComponentError(
            step,
            f"{what} lacks column(s) {missing}; it has {sorted(frame.columns)}",
            "add the columns upstream, or change the pipeline config to the columns the data has",
        )
