"""Scanning a pyarrow dataset in batches without reading ahead of the caller.

pyarrow's `Dataset.to_batches` reads ahead by default: 16 batches of each of 4 files at once
(`batch_readahead`, `fragment_readahead`). On one file of 10M rows that held about 1.3 GB of
batches in memory beside the step's own work; on a folder of ten 10M-row files (the 100M-row
benchmark) validate peaked at 8.5 GB, against the 4 GB issue 33 allows. The steps that stream
their input (validate, materialize's copy, evaluate, drift) scan through `bounded_batches`
instead: one batch of one file ahead, so what a step holds is its own batch and the next.

The reader's batches end where a Parquet row group ends: pyarrow writes row groups of 1,048,576
rows, so 1M-row batches of a 10M-row file came as 1,000,000 then 48,576 rows, twice the batches
asked for. A step that pays a fixed cost per batch (validate: about 0.5 s of GX's graph per
run, whatever the rows) reads `full_batches`, which joins the pieces back into `batch_size` rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

__all__ = ["READAHEAD", "bounded_batches", "full_batches"]

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


def full_batches(
    dataset: ds.Dataset, *, batch_size: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """`bounded_batches` joined across row groups: every batch holds `batch_size` rows but the
    last, which holds the rest (none where the dataset has no rows)."""
    import pyarrow as pa

    held: list[pa.RecordBatch] = []
    count = 0
    for batch in bounded_batches(dataset, batch_size=batch_size, columns=columns):
        while batch.num_rows:
            take = min(batch.num_rows, batch_size - count)
            held.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == batch_size:
                yield held[0] if len(held) == 1 else pa.concat_batches(held)
                held, count = [], 0
    if count:
        yield held[0] if len(held) == 1 else pa.concat_batches(held)
