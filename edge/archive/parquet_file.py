"""One window into one Parquet file on local disk, durably, described by what is on disk.

``write_window`` streams the window from InfluxDB chunk by chunk into a temporary
file, fsyncs it, renames it into place and fsyncs the directory (so a power cut
after the window is deleted from InfluxDB still finds it), then ``read_back``
describes the file from the disk itself: its SHA-256, its rows, its values per
field and its time range are read from the synced file with the cached pages
dropped, never from what the writer meant to write. Those figures are what the
archiver compares with InfluxDB's counts before anything is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edge.archive import columnar
from edge.archive import parquet_schema as schema
from edge.archive.export import InfluxArchiveSource
from edge.archive.windows import Window
from edge.archive.store import FileDigest, file_digest, make_dirs, read_from_disk, replace_durably


class WindowFailed(RuntimeError):
    """This window is not archived (it stays in InfluxDB); the others go on."""


@dataclass
class WrittenPart:
    path: Path
    digest: FileDigest
    rows: int
    field_counts: dict[str, int]
    columns: list[dict[str, str]]  # [{"name", "type": str(Arrow type)}] in file order
    min_time: str
    max_time: str


def write_window(
    source: InfluxArchiveSource,
    window: Window,
    fields: dict[str, pa.DataType],
    tags: list[str],
    target: Path,
    chunk_rows: int,
    zstd_level: int,
    row_group_rows: int = 131_072,
) -> WrittenPart:
    """Stream the window from InfluxDB into ``target`` (atomically, durably)."""
    make_dirs(target.parent)
    tmp = target.with_name(f".{target.name}.tmp")
    writer: pq.ParquetWriter | None = None
    arrow_schema: pa.Schema | None = None
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        for columns, values in source.export(window, chunk_rows, columnar.kinds(fields, tags)):
            if writer is None:
                arrow_schema = schema.arrow_schema(columns, fields, tags)
                writer = _parquet_writer(tmp, arrow_schema, zstd_level)
            if isinstance(values, columnar.Decoded):
                batch = columnar.record_batch(columns, values, arrow_schema)
            else:
                batch = schema.record_batch(columns, values, arrow_schema)
            del values
            pending.append(batch)
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
                pending, pending_rows = [], 0
        if writer is None:
            raise WindowFailed(f"{window.label()}: InfluxDB returned no points")
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
            pending = []
        writer.close()
        writer = None
        replace_durably(tmp, target)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    part = read_back(target, fields)
    if part.rows != rows:
        raise WindowFailed(f"{window.label()}: wrote {rows} rows, the file on disk holds {part.rows}")
    return part


def write_table(
    table: pa.Table, fields: dict[str, pa.DataType], target: Path, zstd_level: int, row_group_rows: int = 131_072
) -> WrittenPart:
    """Write ``table`` (a consolidated day) into ``target`` as ``write_window`` does:
    temporary file, fsync, rename, then described from the disk."""
    make_dirs(target.parent)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with _parquet_writer(tmp, table.schema, zstd_level) as writer:
            writer.write_table(table, row_group_size=row_group_rows)
        replace_durably(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    part = read_back(target, fields)
    if part.rows != table.num_rows:
        raise WindowFailed(f"{target}: wrote {table.num_rows} rows, the file on disk holds {part.rows}")
    return part


def _parquet_writer(path: Path, arrow_schema: pa.Schema, zstd_level: int) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        path,
        arrow_schema,
        compression="zstd",
        compression_level=zstd_level,
        # Timestamps are unique and evenly spaced: delta encoding stores them in a
        # few bits each (a dictionary would double the file).
        use_dictionary=[n for n in arrow_schema.names if n != schema.TIME_COLUMN],
        column_encoding={schema.TIME_COLUMN: "DELTA_BINARY_PACKED"},
        write_statistics=True,
        coerce_timestamps="us",
        allow_truncated_timestamps=False,
    )


def read_back(path: Path, fields: dict[str, pa.DataType]) -> WrittenPart:
    """What the file on disk holds: digest, rows, values per field, time range."""
    read_from_disk(path)
    digest = file_digest(path)
    parquet = pq.ParquetFile(path)
    arrow_schema = parquet.schema_arrow
    counts: dict[str, int] = {}
    rows = 0
    lo = hi = None
    # Column by column, row group by row group, on this thread: every value is
    # decoded, and memory stays at one column chunk whatever the window's size
    # (decoder threads would each keep an allocator arena: RSS grew 30 MB a run).
    for index in range(parquet.num_row_groups):
        for name in arrow_schema.names:
            column = parquet.read_row_group(index, columns=[name], use_threads=False).column(0)
            if name == schema.TIME_COLUMN:
                rows += len(column)
                span = pc.min_max(column)
                first, last = span["min"].value, span["max"].value
                lo = first if lo is None or first < lo else lo
                hi = last if hi is None or last > hi else hi
            elif name in fields and len(column) - column.null_count:
                counts[name] = counts.get(name, 0) + len(column) - column.null_count
            del column
    return WrittenPart(
        path=path,
        digest=digest,
        rows=rows,
        field_counts=dict(sorted(counts.items())),
        columns=[{"name": f.name, "type": str(f.type)} for f in arrow_schema],
        min_time=_iso_us(lo),
        max_time=_iso_us(hi),
    )


def _iso_us(us: int | None) -> str:
    if us is None:
        return ""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return moment.isoformat().replace("+00:00", "Z")
