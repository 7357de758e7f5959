"""InfluxDB's chunked MessagePack answer -> Arrow columns, without a Python object per value.

``documents`` cuts the streamed answer into its documents (one per chunk) and
decodes each with the compiled ``edge.archive.msgcols`` straight into column
buffers; ``record_batch`` wraps those buffers as Arrow arrays of the window's
schema (no copy). A document the fast path does not take (an error, a column it
was not told about, a value of another type than its column's: a field InfluxDB
holds with several types, an unsigned above int64) is decoded with ``msgpack``
instead and goes the reference way (``parquet_schema.record_batch``), so every
value stays exact. Without the extension (not built) every document goes that
way. Memory: one document (``chunk_rows`` rows) at a time, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack
import pyarrow as pa

from edge.archive import parquet_schema as schema

try:
    from edge.archive import msgcols as _msgcols
except ImportError:  # not built (no compiler at install time): msgpack decodes
    _msgcols = None

#: Which decoder runs: ``msgcols`` (compiled) or ``msgpack`` (the extension is not built).
PATH = "msgpack" if _msgcols is None else "msgcols"

TIME, FLOAT, INT, BOOL, STRING, SKIP = range(6)
_KIND_OF_TYPE = {pa.float64(): FLOAT, pa.int64(): INT, pa.bool_(): BOOL, pa.string(): STRING}
_TYPE_OF_KIND = {FLOAT: pa.float64(), INT: pa.int64(), BOOL: pa.bool_(), STRING: pa.string()}


@dataclass
class Decoded:
    """One series of one document as column buffers: per column of the answer
    ``[kind, validity bits, values (or string offsets), string bytes, nulls]``."""

    rows: int
    buffers: list[list]


def kinds(fields: dict[str, pa.DataType], tags: Iterable[str]) -> dict[str, int]:
    """What the fast path expects in each column, by the rules of ``parquet_schema.arrow_schema``:
    tags are strings, the partition tag is not stored, fields by their Arrow type;
    a field of another type (uint64) is left out, so its documents go the reference way."""
    out = {schema.TIME_COLUMN: TIME}
    for tag in tags:
        out[tag] = SKIP if tag == schema.PARTITION_TAG else STRING
    for name, dtype in fields.items():
        if dtype not in _KIND_OF_TYPE:
            out.pop(name, None)
        else:
            out[name] = _KIND_OF_TYPE[dtype]
    out.pop("", None)
    return out


def documents(stream: Iterable[bytes], expected: dict[str, int]) -> Iterator[list[tuple[list[str], Decoded]] | dict]:
    """Each document of the answer: its series decoded into buffers, or (the
    reference path) the document itself as ``msgpack`` decodes it."""
    if _msgcols is None:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        for data in stream:
            unpacker.feed(data)
            yield from unpacker
        return
    buf = bytearray()
    framer = _msgcols.Framer()
    for data in stream:
        buf += data
        start = 0
        while (end := framer.end(buf, start)) >= 0:
            series = _msgcols.decode(buf, start, end, expected)
            if series is None:
                yield msgpack.unpackb(bytes(buf[start:end]), raw=False)
            else:
                yield [(columns, Decoded(rows, buffers)) for columns, rows, buffers in series]
            start = end
        del buf[:start]
        framer.shift(start)
    if buf:
        raise ValueError(f"influxdb: the answer ends inside a document ({len(buf)} bytes left)")


def record_batch(columns: list[str], decoded: Decoded, arrow_schema: pa.Schema) -> pa.RecordBatch:
    """One decoded series -> a batch of ``arrow_schema`` (columns it lacks are null)."""
    position = {name: i for i, name in enumerate(columns)}
    arrays = []
    for field in arrow_schema:
        at = position.get(field.name)
        if at is None:
            arrays.append(pa.nulls(decoded.rows, field.type))
        elif field.name == schema.TIME_COLUMN:
            kind, _, data, _, _ = decoded.buffers[at]
            if kind != TIME:
                raise schema.SchemaError(f"column {field.name!r} decoded as kind {kind}")
            arrays.append(schema.time_array(pa.Array.from_buffers(pa.int64(), decoded.rows, [None, pa.py_buffer(data)])))
        else:
            arrays.append(_array(field, decoded.rows, *decoded.buffers[at]))
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def _array(field: pa.Field, rows: int, kind: int, valid: bytearray, data: bytearray, text: bytearray,
           nulls: int) -> pa.Array:
    if _TYPE_OF_KIND.get(kind) != field.type:
        raise schema.SchemaError(f"column {field.name!r} decoded as kind {kind}, its type is {field.type}")
    validity = pa.py_buffer(valid) if nulls else None
    if kind == STRING:
        array = pa.Array.from_buffers(pa.string(), rows, [validity, pa.py_buffer(data), pa.py_buffer(text)],
                                      null_count=nulls)
        array.validate(full=True)  # UTF-8, as msgpack's decoding checks it
        return array
    return pa.Array.from_buffers(field.type, rows, [validity, pa.py_buffer(data)], null_count=nulls)
