"""Scanning a pyarrow dataset in batches without reading ahead of the caller.

pyarrow's `Dataset.to_batches` reads ahead by default: 16 batches of each of 4 files at once
(`batch_readahead`, `fragment_readahead`). On one file of 10M rows that held about 1.3 GB of
batches in memory beside the step's own work; on a folder of ten 10M-row files (the 100M-row
benchmark) validate peaked at 8.5 GB, against the 4 GB issue 33 allows. The steps that stream
their input (validate, materialize's copy, evaluate, drift) scan through `bounded_batches`
instead: one batch of one file ahead, so what a step holds is its own batch and the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = ["READAHEAD", "bounded_batches"]

READAHEAD = 1
"""Batches, and files, read ahead of the one the caller holds."""


def bounded_batches(
    dataset: ds.Dataset, *, batch_size: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The dataset's rows in order, at most `batch_size` rows a batch, READAHEAD ahead."""
    yield from dataset.to_batches(
        columns=list(columns) if columns is not None else None,
        batch_size=batch_size,
        batch_readahead=READAHEAD,
        fragment_readahead=READAHEAD,
    )
