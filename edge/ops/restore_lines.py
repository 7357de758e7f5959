"""Archived rows -> InfluxDB line protocol, exact in value and type. Pure, columnar.

An archive part (``edge.archive.parquet_schema``) holds one measurement of one
site: ``time`` (UTC microseconds), tags as strings, fields as double, boolean,
int64 or string; ``site_id`` is the hive partition, not a column. Each row
becomes one line, built column by column with Arrow compute (no Python loop per
value):

- floats in their shortest round-trip form (``31`` is still a float: no ``i``),
  integers with ``i``, booleans ``true``/``false``, strings quoted with
  ``edge.core.lineproto``'s string escapes (``\\`` and ``"``: InfluxDB 1.x unescapes
  exactly those two inside a string field);
- names as InfluxDB stored them, quoted by ``edge.core.lineproto.quote`` (the same
  escapes the parser writes: a backslash elsewhere is written as it is and read
  back as it was). (The ``influxdb`` package's ``make_lines`` doubles every
  backslash in tags and turns newlines inside string fields into ``\\n``: both
  change the value.)
- a null tag is left out of the series key, a null field out of the field set (as
  InfluxDB stored them); tags are written sorted, ``site_id`` among them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from edge.core import lineproto

TIME_COLUMN = "time"

def _escape_column(values: pa.Array) -> pa.Array:
    """``lineproto.quote`` of tag values, over a column."""
    for plain, escaped in lineproto.ESCAPED[lineproto.TAG].items():
        values = pc.replace_substring(values, plain, escaped)
    return values


def _concat(*parts, separator: str = "") -> pa.Array:
    """Element-wise concatenation; null where any part is null."""
    return pc.binary_join_element_wise(*parts, separator)


def _optional(prefix: str, values: pa.Array) -> pa.Array:
    """``prefix + value``, or "" where the value is null. (Joining with
    ``null_handling="skip"`` would be the direct way, but pyarrow 26 drops rows
    whose parts are all null from its result, misaligning every row after.)"""
    return pc.fill_null(_concat(prefix, values), "")


def _field_text(values: pa.Array) -> pa.Array:
    kind = values.type
    if pa.types.is_floating(kind):
        return pc.cast(values, pa.string())  # shortest round-trip representation
    if pa.types.is_boolean(kind):
        return pc.if_else(values, "true", "false")
    if pa.types.is_integer(kind):
        return _concat(pc.cast(values, pa.string()), "i")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        for plain, escaped in lineproto.STRING_ESCAPES:
            values = pc.replace_substring(values, plain, escaped)
        return _concat('"', values, '"')
    raise ValueError(f"field type {kind} has no line-protocol form")


def line_array(
    batch: pa.RecordBatch | pa.Table, measurement: str, site_id: str | None, fields: Iterable[str]
) -> pa.Array:
    """One line per row (no trailing newline); rows without any field value are dropped."""
    field_set = set(fields)
    names = [n for n in batch.schema.names if n != TIME_COLUMN]
    tags = {n: batch.column(n) for n in names if n not in field_set}
    if site_id is not None:
        tags["site_id"] = pa.nulls(batch.num_rows, pa.string()).fill_null(site_id)
    series = [lineproto.quote(measurement, lineproto.MEASUREMENT)]
    for key in sorted(tags):
        values = tags[key]
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        series.append(_optional("," + lineproto.quote(key, lineproto.TAG) + "=", _escape_column(values)))
    pieces = [_optional("," + lineproto.quote(name, lineproto.FIELD) + "=", _field_text(batch.column(name)))
              for name in sorted(field_set & set(names))]
    if not pieces:
        return pa.array([], pa.string())
    field_text = _concat(*pieces) if len(pieces) > 1 else pieces[0]  # each piece starts with ","
    has_fields = pc.not_equal(pc.binary_length(field_text), 0)
    field_text = pc.utf8_slice_codeunits(field_text, 1)
    series_text = _concat(*series) if len(series) > 1 else series[0]
    ns = pc.multiply(pc.cast(pc.cast(batch.column(TIME_COLUMN), pa.timestamp("us", tz="UTC")), pa.int64()), 1000)
    lines = _concat(series_text, field_text, pc.cast(ns, pa.string()), separator=" ")
    return pc.filter(lines, has_fields)


def value_count(batch: pa.RecordBatch | pa.Table, fields: Iterable[str]) -> int:
    """Field values (non-null) in ``batch``: what InfluxDB's count(*) adds up."""
    names = set(batch.schema.names)
    return sum(len(batch.column(f)) - batch.column(f).null_count for f in fields if f in names)


def bodies(lines: pa.Array, max_lines: int) -> Iterator[tuple[bytes, int]]:
    """Newline-joined request bodies of at most ``max_lines`` lines: (body, lines)."""
    if len(lines) == 0:
        return
    terminated = pc.binary_join_element_wise(lines, "\n", "")
    if isinstance(terminated, pa.ChunkedArray):
        terminated = terminated.combine_chunks()
    offsets = memoryview(terminated.buffers()[1]).cast("i")[terminated.offset:terminated.offset + len(terminated) + 1]
    data = terminated.buffers()[2]
    for start in range(0, len(terminated), max_lines):
        stop = min(start + max_lines, len(terminated))
        a, b = int(offsets[start]), int(offsets[stop])
        yield data[a:b].to_pybytes().rstrip(b"\n"), stop - start
