"""Output formats written in Python, as ``orchard.ResultSink`` subclasses.

A run (``orchard.run(sinks=[...])``, ``orchard.spark.run``) hands each sink its result rows
in output order, in chunks (orchard/sink.h): ``begin(context)`` once, ``write(rows)`` per
chunk, ``commit()`` at the end, all from one thread. A sink writes one file in
``context.dir`` under a temporary name and makes it whole under ``name()`` in ``commit()``;
the run publishes it (uploads it for an s3:// output) after that. Temporary files left by a
run that failed are named ``<name>.tmp-*``, which the next run into the output removes.

Each sink holds the state of one run at a time (no module state).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import List, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from ._orchard import InvalidArgumentError, ResultRows, ResultSink, SinkContext

__all__ = ["ParquetSink", "PARQUET_ROW_GROUP_ROWS"]

# Rows per Parquet row group, whatever the chunks the run delivers: the same rows give the
# same file, byte for byte.
PARQUET_ROW_GROUP_ROWS = 65_536


def parquet_schema(k: int) -> pa.Schema:
    """path, label (string), pc_1..pc_k (float32): the columns of features.csv."""
    return pa.schema([("path", pa.string()), ("label", pa.string())] +
                     [(f"pc_{j}", pa.float32()) for j in range(1, k + 1)])


class ParquetSink(ResultSink):
    """features.parquet: the reduced matrix with its paths and labels (``parquet_schema``),
    in row groups of ``row_group_rows`` rows."""

    def __init__(self, name: str = "features.parquet",
                 row_group_rows: int = PARQUET_ROW_GROUP_ROWS) -> None:
        super().__init__()
        if row_group_rows < 1:
            raise InvalidArgumentError("row_group_rows must be positive")
        self._name = name
        self._row_group_rows = row_group_rows
        self._schema: Optional[pa.Schema] = None
        self._writer: Optional[pq.ParquetWriter] = None
        self._temporary: Optional[Path] = None
        self._final: Optional[Path] = None
        self._pending: List[pa.Table] = []
        self._pending_rows = 0

    def name(self) -> str:
        return self._name

    def begin(self, context: SinkContext) -> None:
        self._discard()
        folder = Path(context.dir)
        self._final = folder / self._name
        self._temporary = folder / f"{self._name}.tmp-{uuid.uuid4().hex[:12]}"
        self._schema = parquet_schema(int(context.k))
        self._writer = pq.ParquetWriter(str(self._temporary), self._schema)

    def write(self, rows: ResultRows) -> None:
        if self._writer is None or self._schema is None:
            raise InvalidArgumentError("ParquetSink.write() before begin()")
        reduced = rows.reduced
        columns = [pa.array(rows.paths, pa.string()), pa.array(rows.labels, pa.string())]
        columns += [pa.array(reduced[:, j], pa.float32()) for j in range(reduced.shape[1])]
        self._pending.append(pa.Table.from_arrays(columns, schema=self._schema))
        self._pending_rows += len(rows.paths)
        while self._pending_rows >= self._row_group_rows:
            table = pa.concat_tables(self._pending).combine_chunks()
            self._writer.write_table(table.slice(0, self._row_group_rows),
                                     row_group_size=self._row_group_rows)
            rest = table.slice(self._row_group_rows)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def commit(self) -> None:
        if self._writer is None or self._temporary is None or self._final is None:
            raise InvalidArgumentError("ParquetSink.commit() before begin()")
        if self._pending_rows:
            self._writer.write_table(pa.concat_tables(self._pending).combine_chunks(),
                                     row_group_size=self._row_group_rows)
        self._pending, self._pending_rows = [], 0
        self._writer.close()
        self._writer = None
        with open(self._temporary, "rb") as f:  # durable before it takes the final name
            os.fsync(f.fileno())
        os.replace(self._temporary, self._final)
        self._temporary = None

    def _discard(self) -> None:
        """Drops an unfinished file (a run that failed before commit)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink()
            self._temporary = None
        self._pending, self._pending_rows = [], 0

    def __del__(self) -> None:
        self._discard()
