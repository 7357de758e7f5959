"""InfluxDB columns -> Arrow schema and record batches: pure functions, no I/O.

- ``time``: ``timestamp[us, tz=UTC]`` (Parquet TIMESTAMP(isAdjustedToUTC, MICROS)).
  InfluxDB keeps nanoseconds; our points carry whole seconds, and Athena reads
  milliseconds at best. Microseconds are the finest unit Athena, Glue and DuckDB all
  read as a timestamp. The cast is *safe*: a point with a sub-microsecond part makes
  its window fail loudly (and stay in InfluxDB) instead of being truncated.
- Tags: ``string``. ``site_id`` is not stored in the file: it is the hive partition
  column (Athena and DuckDB add it back from the path).
- Fields by their type in ``SHOW FIELD KEYS``: float -> double, boolean -> bool,
  integer -> int64, string -> string. A field with several types across shards
  (InfluxDB allows that per shard) becomes double for float+integer, else string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

TIME_COLUMN = "time"
PARTITION_TAG = "site_id"
TIME_TYPE = pa.timestamp("us", tz="UTC")
_NS_TYPE = pa.timestamp("ns", tz="UTC")

INFLUX_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "integer": pa.int64(),
    "unsigned": pa.uint64(),
    "string": pa.string(),
}


class SchemaError(ValueError):
    """A response column we cannot type: the window is left in InfluxDB."""


def field_type(influx_types: Iterable[str]) -> pa.DataType:
    kinds = set(influx_types)
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind not in INFLUX_TYPES:
            raise SchemaError(f"unknown InfluxDB field type {kind!r}")
        return INFLUX_TYPES[kind]
    if kinds <= {"float", "integer"}:
        return pa.float64()
    return pa.string()


def field_types(show_field_keys: Iterable[tuple[str, str]]) -> dict[str, pa.DataType]:
    """``(fieldKey, fieldType)`` rows of SHOW FIELD KEYS -> Arrow type per field."""
    kinds: dict[str, list[str]] = {}
    for key, kind in show_field_keys:
        kinds.setdefault(key, []).append(kind)
    return {key: field_type(k) for key, k in kinds.items()}


def arrow_schema(
    columns: Sequence[str], fields: dict[str, pa.DataType], tags: Iterable[str]
) -> pa.Schema:
    """Schema for a response's columns: time, then tags, then fields, each sorted."""
    tag_set = set(tags)
    unknown = [c for c in columns if c != TIME_COLUMN and c not in fields and c not in tag_set]
    if unknown:
        raise SchemaError(f"columns neither field nor tag: {unknown}")
    if TIME_COLUMN not in columns:
        raise SchemaError("response has no time column")
    tag_cols = sorted(c for c in columns if c in tag_set and c not in fields and c != PARTITION_TAG)
    field_cols = sorted(c for c in columns if c in fields)
    return pa.schema(
        [pa.field(TIME_COLUMN, TIME_TYPE, nullable=False)]
        + [pa.field(c, pa.string()) for c in tag_cols]
        + [pa.field(c, fields[c]) for c in field_cols]
    )


def _column(values: Sequence, dtype: pa.DataType) -> pa.Array:
    if dtype == pa.string():
        values = [v if v is None or isinstance(v, str) else _as_text(v) for v in values]
    return pa.array(values, type=dtype)


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def time_array(ns_values: Sequence[int] | pa.Array) -> pa.Array:
    """Epoch nanoseconds -> microsecond timestamps; raises on a lossy cast."""
    if not isinstance(ns_values, pa.Array):
        ns_values = pa.array(ns_values, type=pa.int64())
    ns = ns_values.cast(_NS_TYPE)
    try:
        return ns.cast(TIME_TYPE, safe=True)
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"timestamps below microsecond precision, not archived: {exc}") from exc


def record_batch(columns: Sequence[str], rows: Sequence[Sequence], schema: pa.Schema) -> pa.RecordBatch:
    """One response chunk (row-major, as InfluxDB sends it) -> a batch of ``schema``."""
    position = {name: i for i, name in enumerate(columns)}
    by_column = list(zip(*rows)) if rows else [()] * len(columns)
    arrays = []
    for field in schema:
        values = by_column[position[field.name]] if field.name in position else [None] * len(rows)
        if field.name == TIME_COLUMN:
            arrays.append(time_array(values))
        else:
            arrays.append(_column(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

