"""A minimal reader for Apache Thrift's compact protocol (enough for Parquet footers).

Decodes a struct into ``{field_id: value}``, recursively: nested structs become dicts,
lists and sets become lists, maps become dicts, binaries stay ``bytes``. It knows
nothing about Parquet; unknown fields are decoded like any other, so footers written
by newer Parquet versions still read. Pure: bytes in, values out.

Protocol reference: https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md
"""

from __future__ import annotations

import struct
from typing import Any

STOP = 0
BOOLEAN_TRUE = 1
BOOLEAN_FALSE = 2
BYTE = 3
I16 = 4
I32 = 5
I64 = 6
DOUBLE = 7
BINARY = 8
LIST = 9
SET = 10
MAP = 11
STRUCT = 12

# Deeper than any Parquet footer nests; guards against crafted input.
MAX_DEPTH = 64


class ThriftDecodeError(ValueError):
    """The bytes are not a well-formed compact-protocol struct."""


class CompactReader:
    def __init__(self, data: bytes | memoryview, offset: int = 0):
        self._data = memoryview(data)
        self.offset = offset

    def _byte(self) -> int:
        if self.offset >= len(self._data):
            raise ThriftDecodeError("unexpected end of data")
        value = self._data[self.offset]
        self.offset += 1
        return value

    def _take(self, n: int) -> bytes:
        if n < 0 or self.offset + n > len(self._data):
            raise ThriftDecodeError("unexpected end of data")
        chunk = bytes(self._data[self.offset : self.offset + n])
        self.offset += n
        return chunk

    def varint(self) -> int:
        result = 0
        shift = 0
        while True:
            b = self._byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftDecodeError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def read_value(self, ttype: int, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ThriftDecodeError("nesting too deep")
        if ttype == BOOLEAN_TRUE:
            return True
        if ttype == BOOLEAN_FALSE:
            return False
        if ttype == BYTE:
            return struct.unpack("<b", self._take(1))[0]
        if ttype in (I16, I32, I64):
            return self.zigzag()
        if ttype == DOUBLE:
            return struct.unpack("<d", self._take(8))[0]
        if ttype == BINARY:
            return self._take(self.varint())
        if ttype in (LIST, SET):
            return self._read_list(depth)
        if ttype == MAP:
            return self._read_map(depth)
        if ttype == STRUCT:
            return self.read_struct(depth + 1)
        raise ThriftDecodeError(f"unknown compact type {ttype}")

    def _read_element(self, etype: int, depth: int) -> Any:
        # Booleans inside containers are one byte each (1 = true).
        if etype in (BOOLEAN_TRUE, BOOLEAN_FALSE):
            return self._byte() == BOOLEAN_TRUE
        return self.read_value(etype, depth + 1)

    def _read_list(self, depth: int) -> list[Any]:
        header = self._byte()
        size = header >> 4
        etype = header & 0x0F
        if size == 15:
            size = self.varint()
        return [self._read_element(etype, depth) for _ in range(size)]

    def _read_map(self, depth: int) -> dict[Any, Any]:
        size = self.varint()
        if size == 0:
            return {}
        types = self._byte()
        ktype, vtype = types >> 4, types & 0x0F
        out: dict[Any, Any] = {}
        for _ in range(size):
            key = self._read_element(ktype, depth)
            out[key] = self._read_element(vtype, depth)
        return out

    def read_struct(self, depth: int = 0, stop_after: int | None = None) -> dict[int, Any]:
        """Fields of one struct. ``stop_after``: return as soon as that field is read
        (the rest of the struct is left unread)."""
        fields: dict[int, Any] = {}
        last_id = 0
        while True:
            header = self._byte()
            ttype = header & 0x0F
            if ttype == STOP:
                return fields
            delta = header >> 4
            field_id = last_id + delta if delta else self.zigzag()
            fields[field_id] = self.read_value(ttype, depth)
            last_id = field_id
            if stop_after is not None and field_id == stop_after:
                return fields


def read_struct(data: bytes | memoryview, stop_after: int | None = None) -> dict[int, Any]:
    return CompactReader(data).read_struct(stop_after=stop_after)
