"""A bounded DuckDB session for the data steps and the online writer (issue 33).

One place for how the platform opens DuckDB out of core: a database file in a scratch folder,
`memory_limit` from `MLOPS_DUCKDB_MEMORY_LIMIT` (default 1GB) with spills beside it, times in
UTC, insertion order kept; and the quoting every query built here needs. It lives at the root of
`components/` because two rooms use it: the steps (the point-in-time join, the input copy,
validate's whole-table checks) and the platform clients (the online writer's latest-row pass).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

__all__ = ["DEFAULT_MEMORY_LIMIT", "MEMORY_LIMIT_VARIABLE", "connect", "literal", "one_row", "quote"]

MEMORY_LIMIT_VARIABLE = "MLOPS_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"
"""DuckDB's own budget in a step (buffers, hash tables, sorts; beyond it, it spills to disk).
The step's pod limit in pipelines/standard.py is this plus Python's share, from the measured
model in docs/performance.md."""


def quote(name: str) -> str:
    """A DuckDB identifier, whatever characters the column name holds."""
    return '"' + name.replace('"', '""') + '"'


def one_row(db: duckdb.DuckDBPyConnection, query: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The single row of an aggregate query, its result finished (DuckDB refuses other work on a
    connection while a result is unfinished)."""
    rows = db.execute(query, list(parameters)).fetchall()
    return tuple(rows[0])


def literal(text: str) -> str:
    """A DuckDB string literal (a path, a time), whatever characters it holds."""
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def connect(memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB database in a scratch folder, bounded by `memory_limit` and spilling beside it;
    times in UTC. The folder goes when the block ends."""
    import duckdb

    limit = memory_limit or os.environ.get(MEMORY_LIMIT_VARIABLE) or DEFAULT_MEMORY_LIMIT
    with tempfile.TemporaryDirectory(prefix="mlops-duckdb-") as scratch:
        connection = duckdb.connect(str(Path(scratch) / "work.duckdb"))
        try:
            connection.execute(f"SET memory_limit = {literal(limit)}")
            connection.execute(f"SET temp_directory = {literal(str(Path(scratch) / 'spill'))}")
            connection.execute("SET TimeZone = 'UTC'")
            connection.execute("SET preserve_insertion_order = true")
            yield connection
        finally:
            connection.close()
