"""components/arrow_batches.py: `full_batches` gives batches of exactly `batch_size` rows across row
groups and files, the rows in order; `bounded_batches`, the control, ends a batch at each row group."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from components.arrow_batches import bounded_batches, full_batches


def _dataset(folder: Path) -> tuple[ds.Dataset, pa.Table]:
    """Two files of 2,450 and 1,300 rows, in row groups of 700 rows, with a null in one column."""
    folder.mkdir()
    ids = list(range(3750))
    table = pa.table({"id": ids, "value": [None if i == 1234 else float(i) for i in ids]})
    pq.write_table(table.slice(0, 2450), folder / "part-0.parquet", row_group_size=700)
    pq.write_table(table.slice(2450), folder / "part-1.parquet", row_group_size=700)
    return ds.dataset(folder), table


def test_full_batches_hold_batch_size_rows_in_order(tmp_path: Path) -> None:
    dataset, table = _dataset(tmp_path / "data")
    got = list(full_batches(dataset, batch_size=1000))
    assert [batch.num_rows for batch in got] == [1000, 1000, 1000, 750]
    assert pa.Table.from_batches(got).equals(table)
    only = list(full_batches(dataset, batch_size=1000, columns=["value"]))
    assert only[0].schema.names == ["value"] and only[1].column(0)[234].as_py() is None


def test_bounded_batches_end_at_each_row_group(tmp_path: Path) -> None:
    """The control: the reader's own batches stop at row groups and files, so 1,000 rows asked
    gives more, smaller batches; what full_batches joins back."""
    dataset, table = _dataset(tmp_path / "data")
    got = list(bounded_batches(dataset, batch_size=1000))
    assert [batch.num_rows for batch in got] == [700, 700, 700, 350, 700, 600]
    assert pa.Table.from_batches(got).equals(table)


def test_full_batches_of_no_rows_give_none(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([], pa.int64())}), tmp_path / "empty.parquet")
    assert list(full_batches(ds.dataset(tmp_path / "empty.parquet"), batch_size=10)) == []
