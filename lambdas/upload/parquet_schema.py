"""The columns of a Parquet file, read from its footer alone, as Glue/Hive types.

A Parquet file ends with ``<FileMetaData (Thrift compact)><4-byte length LE>PAR1``.
The schema is field 2 of FileMetaData: a depth-first list of SchemaElements, the
first being the root. We decode only up to that field, so the row-group metadata of
large files is never parsed. Pure: bytes in, columns out; fetching the tail of an S3
object is the handler's job.

Parquet format reference: https://github.com/apache/parquet-format (parquet.thrift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .thrift_compact import ThriftDecodeError, read_struct

MAGIC = b"PAR1"
ENCRYPTED_MAGIC = b"PARE"
TRAILER_SIZE = 8  # 4-byte footer length + magic

# parquet.thrift: enum Type
BOOLEAN, INT32, INT64, INT96, FLOAT, DOUBLE, BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY = range(8)
# enum FieldRepetitionType
REQUIRED, OPTIONAL, REPEATED = range(3)
# enum ConvertedType (legacy annotations, still written next to logical types)
UTF8, MAP, MAP_KEY_VALUE, LIST, ENUM, DECIMAL, DATE = 0, 1, 2, 3, 4, 5, 6
TIMESTAMP_MILLIS, TIMESTAMP_MICROS = 9, 10
UINT_8, UINT_16, UINT_32, UINT_64 = 11, 12, 13, 14
INT_8, INT_16, INT_32, INT_64 = 15, 16, 17, 18
JSON, BSON = 19, 20
# union LogicalType: field ids
LT_STRING, LT_MAP, LT_LIST, LT_ENUM, LT_DECIMAL, LT_DATE = 1, 2, 3, 4, 5, 6
LT_TIME, LT_TIMESTAMP, LT_INTEGER, LT_JSON, LT_BSON, LT_UUID = 7, 8, 10, 12, 13, 14

# SchemaElement field ids
SE_TYPE, SE_TYPE_LENGTH, SE_REPETITION, SE_NAME, SE_NUM_CHILDREN = 1, 2, 3, 4, 5
SE_CONVERTED, SE_SCALE, SE_PRECISION, SE_LOGICAL = 6, 7, 8, 10
FMD_SCHEMA = 2
MAX_NESTING = 32


class ParquetFooterError(ValueError):
    """Not a readable (unencrypted) Parquet footer."""


class NeedMoreBytes(Exception):
    """The tail given is shorter than the footer; fetch ``size`` bytes from the end."""

    def __init__(self, size: int):
        super().__init__(f"footer needs the last {size} bytes")
        self.size = size


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue/Hive type: double, boolean, bigint, string, timestamp, ...


def footer_length(tail: bytes) -> int:
    """Length of the Thrift FileMetaData, from the last 8 bytes of the file."""
    if len(tail) < TRAILER_SIZE:
        raise ParquetFooterError("file shorter than a Parquet trailer")
    magic = tail[-4:]
    if magic == ENCRYPTED_MAGIC:
        raise ParquetFooterError("encrypted Parquet footers are not supported")
    if magic != MAGIC:
        raise ParquetFooterError("no Parquet magic at the end of the file")
    return int.from_bytes(tail[-8:-4], "little")


def columns_from_tail(tail: bytes, object_size: int | None = None) -> list[Column]:
    """Top-level columns from the last bytes of a Parquet file.

    Raises NeedMoreBytes when ``tail`` does not hold the whole footer, and
    ParquetFooterError when the bytes are not a Parquet footer.
    """
    length = footer_length(tail)
    needed = length + TRAILER_SIZE
    if object_size is not None and needed + len(MAGIC) > object_size:
        raise ParquetFooterError("footer length larger than the file")
    if len(tail) < needed:
        raise NeedMoreBytes(needed)
    metadata = tail[len(tail) - needed : len(tail) - TRAILER_SIZE]
    return columns_from_metadata(metadata)


def columns_from_metadata(metadata: bytes) -> list[Column]:
    try:
        fmd = read_struct(metadata, stop_after=FMD_SCHEMA)
    except ThriftDecodeError as exc:
        raise ParquetFooterError(f"corrupt Parquet footer: {exc}") from exc
    elements = fmd.get(FMD_SCHEMA)
    if not elements or not isinstance(elements, list):
        raise ParquetFooterError("Parquet footer without a schema")
    try:
        return _top_level_columns(elements)
    except (KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
        raise ParquetFooterError(f"malformed Parquet schema: {exc!r}") from exc


# -- schema tree -------------------------------------------------------------------


@dataclass
class _Node:
    element: dict[int, Any]
    children: list["_Node"]

    @property
    def name(self) -> str:
        return self.element[SE_NAME].decode("utf-8")

    @property
    def repeated(self) -> bool:
        return self.element.get(SE_REPETITION) == REPEATED

    @property
    def is_group(self) -> bool:
        return SE_TYPE not in self.element


def _build_tree(elements: list[dict[int, Any]], index: int, depth: int = 0) -> tuple[_Node, int]:
    if depth > MAX_NESTING:
        raise ParquetFooterError("schema nested too deeply")
    element = elements[index]
    index += 1
    children = []
    for _ in range(element.get(SE_NUM_CHILDREN, 0) or 0):
        child, index = _build_tree(elements, index, depth + 1)
        children.append(child)
    return _Node(element, children), index


def _top_level_columns(elements: list[dict[int, Any]]) -> list[Column]:
    root, end = _build_tree(elements, 0)
    if end != len(elements):
        raise ParquetFooterError("schema element count does not match the tree")
    return [Column(child.name, _field_type(child)) for child in root.children]


def _field_type(node: _Node) -> str:
    """Glue type of a field, a repeated field without annotation being an array."""
    base = _group_type(node) if node.is_group else primitive_type(node.element)
    if node.repeated and not _is_list(node) and not _is_map(node):
        return f"array<{base}>"
    return base


def _is_list(node: _Node) -> bool:
    return node.element.get(SE_CONVERTED) == LIST or LT_LIST in (node.element.get(SE_LOGICAL) or {})


def _is_map(node: _Node) -> bool:
    converted = node.element.get(SE_CONVERTED)
    return converted in (MAP, MAP_KEY_VALUE) or LT_MAP in (node.element.get(SE_LOGICAL) or {})


def _group_type(node: _Node) -> str:
    if _is_list(node) and len(node.children) == 1:
        repeated = node.children[0]
        if not repeated.is_group:
            return f"array<{primitive_type(repeated.element)}>"
        if len(repeated.children) == 1:
            return f"array<{_field_type(repeated.children[0])}>"
        return f"array<{_struct_type(repeated.children)}>"
    if _is_map(node) and len(node.children) == 1 and len(node.children[0].children) == 2:
        key, value = node.children[0].children
        return f"map<{_field_type(key)},{_field_type(value)}>"
    return _struct_type(node.children)


def _struct_type(children: list[_Node]) -> str:
    return "struct<" + ",".join(f"{c.name}:{_field_type(c)}" for c in children) + ">"


def primitive_type(element: dict[int, Any]) -> str:
    """Glue/Hive type of a primitive SchemaElement (logical type first, then legacy)."""
    physical = element[SE_TYPE]
    logical: dict[int, Any] = element.get(SE_LOGICAL) or {}
    converted = element.get(SE_CONVERTED)

    if LT_DECIMAL in logical or converted == DECIMAL:
        decimal = logical.get(LT_DECIMAL) or {}
        scale = decimal.get(1, element.get(SE_SCALE, 0))
        precision = decimal.get(2, element.get(SE_PRECISION, 38))
        return f"decimal({precision},{scale})"
    if physical == BOOLEAN:
        return "boolean"
    if physical == INT32:
        if LT_DATE in logical or converted == DATE:
            return "date"
        bits, signed = _integer_annotation(logical, converted)
        if bits == 8 and signed:
            return "tinyint"
        if bits == 16 and signed:
            return "smallint"
        if bits == 32 and not signed:
            return "bigint"
        return "int"
    if physical == INT64:
        if LT_TIMESTAMP in logical or converted in (TIMESTAMP_MILLIS, TIMESTAMP_MICROS):
            return "timestamp"
        bits, signed = _integer_annotation(logical, converted)
        if bits == 64 and not signed:
            return "decimal(20,0)"
        return "bigint"
    if physical == INT96:
        return "timestamp"
    if physical == FLOAT:
        return "float"
    if physical == DOUBLE:
        return "double"
    if physical == BYTE_ARRAY:
        if logical.keys() & {LT_STRING, LT_ENUM, LT_JSON} or converted in (UTF8, ENUM, JSON):
            return "string"
        return "binary"
    if physical == FIXED_LEN_BYTE_ARRAY:
        if LT_UUID in logical:
            return "string"
        return "binary"
    raise ParquetFooterError(f"unknown Parquet physical type {physical}")


def _integer_annotation(logical: dict[int, Any], converted: int | None) -> tuple[int | None, bool]:
    integer = logical.get(LT_INTEGER)
    if integer:
        return integer.get(1), bool(integer.get(2, True))
    legacy = {
        INT_8: (8, True), INT_16: (16, True), INT_32: (32, True), INT_64: (64, True),
        UINT_8: (8, False), UINT_16: (16, False), UINT_32: (32, False), UINT_64: (64, False),
    }
    return legacy.get(converted, (None, True))
