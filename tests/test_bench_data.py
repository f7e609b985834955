"""The benchmark's chunked data (benchmarks/bench.py: generate_raw), which the 100M run reads: a
folder of chunks with exactly the rows asked for, every transaction id once, each user's history in
one chunk (so the window features the generator computed stay true across the folder), the same
columns and types as one generated file, and a folder the steps read (validate's digest and dtypes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from benchmarks.bench import generate_raw
from pipelines.fraud.data import generate


def test_chunks_hold_the_rows_asked_for_with_users_and_ids_disjoint(tmp_path: Path) -> None:
    generate_raw(2_750, 5, tmp_path / "raw", chunk_rows=1_000)
    parts = sorted((tmp_path / "raw").iterdir())
    assert [p.name for p in parts] == ["part-0000.parquet", "part-0001.parquet", "part-0002.parquet"]
    chunks = [pd.read_parquet(p) for p in parts]
    assert [len(c) for c in chunks] == [1_000, 1_000, 750]
    whole = pd.concat(chunks, ignore_index=True)
    assert sorted(whole["transaction_id"]) == list(range(2_750))
    users = [set(c["user_id"]) for c in chunks]
    assert not (users[0] & users[1]) and not (users[1] & users[2]) and not (users[0] & users[2])
    # each chunk is the generator's own output for its seed, only its ids moved
    second = generate(1_000, 6)
    assert (chunks[1]["user_id"] - 100).tolist() == second["user_id"].tolist()
    ids = ["user_id", "transaction_id"]
    assert chunks[1].drop(columns=ids).equals(second.drop(columns=ids))
    one_file = tmp_path / "one.parquet"
    generate_raw(1_000, 5, one_file, chunk_rows=1_000)
    assert one_file.is_file()
    assert ds.dataset(tmp_path / "raw", format="parquet").schema == ds.dataset(one_file, format="parquet").schema


def test_the_validate_step_reads_the_folder_of_chunks(tmp_path: Path) -> None:
    from components.steps.validate import validate
    from pipelines.fraud import pipeline as fraud

    generate_raw(2_500, 5, tmp_path / "raw", chunk_rows=1_000)
    summary = validate(str(tmp_path / "raw"), str(fraud.DECLARATION.folder / "expectations.json"),
                       str(tmp_path / "report.json"))  # fmt: skip
    assert summary["success"] and summary["rows"] == 2_500, summary
