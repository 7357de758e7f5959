"""A day's ``_manifest.json`` -> the Glue columns of its Parquet parts. Pure: bytes
and the day the key names in, columns out, or a ManifestError saying what is wrong.

The archiver writes the manifest after every part it lists was uploaded and
verified; each part records its columns with their Arrow types (``str`` of a
``pyarrow.DataType``: ``timestamp[us, tz=UTC]``, ``string``, ``double``, ``bool``,
``int64``, ...). Two shapes of a part's ``columns`` are read:

- version 1: an object ``{name: type}``. The archiver writes JSON with sorted keys,
  so the file's column order is lost; ``time`` is put first, the rest stay sorted.
- version 2: a list ``[{"name": ..., "type": ...}]`` in the file's column order.

Nothing here reads Parquet: the Lambda never parses the binary objects it is told
about. A manifest that does not describe the day its key names (another
measurement, site or date, a part outside the day's directory), that lacks what
Glue needs, or that carries a type Athena cannot read is refused as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .layout import NO_SITE_PARTITION, ArchiveDay

KNOWN_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
TIME_COLUMN = "time"

# Arrow type (as ``str(pyarrow type)`` spells it) -> Glue/Hive type; the unsigned
# ones widen to the next signed type Athena has (Glue's crawler does the same).
_HIVE_TYPES = {
    "bool": "boolean",
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "int",
    "uint32": "bigint",
    "uint64": "decimal(20,0)",
    "float": "float",
    "double": "double",
    "string": "string",
    "large_string": "string",
    "binary": "binary",
    "large_binary": "binary",
    "date32[day]": "date",
}
_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(, tz=[^\]]+)?\]$")
_DECIMAL = re.compile(r"^decimal(?:128|256)?\((\d+), (\d+)\)$")


class ManifestError(ValueError):
    """The manifest cannot be used; the message says why (for the log and the
    failure queue)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue/Hive type: double, boolean, bigint, string, timestamp, ...


@dataclass(frozen=True)
class DaySchema:
    columns: list[Column]  # every part's columns, the first part's first
    parts: int
    type_conflicts: list[str] = field(default_factory=list)  # "name: kept <- other", first type kept


def hive_type(arrow_type: str) -> str:
    if arrow_type in _HIVE_TYPES:
        return _HIVE_TYPES[arrow_type]
    if _TIMESTAMP.match(arrow_type):
        return "timestamp"
    decimal = _DECIMAL.match(arrow_type)
    if decimal and 1 <= int(decimal.group(1)) <= 38:
        return f"decimal({decimal.group(1)},{decimal.group(2)})"
    raise ManifestError(f"column type {arrow_type!r} has no Glue/Athena equivalent here")


def read_manifest(data: bytes, day: ArchiveDay) -> DaySchema:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ManifestError("not a JSON object")
    _check_version(manifest.get("version"))
    _check_day(manifest, day)
    parts = manifest.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ManifestError("no parts")
    indexes = [_check_part(part, day, n) for n, part in enumerate(parts)]
    if len(set(indexes)) != len(indexes):
        raise ManifestError(f"part indexes repeat: {indexes}")
    columns, conflicts = _union([_part_columns(part, index) for part, index in zip(parts, indexes)])
    return DaySchema(columns, len(parts), conflicts)


def _check_version(version: Any) -> None:
    if type(version) is not int or version < 1:
        raise ManifestError(f"version {version!r} is not a manifest version")
    if version not in KNOWN_VERSIONS:
        raise ManifestError(f"manifest version {version} is newer than this Lambda reads ({max(KNOWN_VERSIONS)})")


def _check_day(manifest: dict[str, Any], day: ArchiveDay) -> None:
    """The manifest describes the very day its key names."""
    site = NO_SITE_PARTITION if manifest.get("site_id") == "" else manifest.get("site_id")
    said = (manifest.get("measurement"), site, manifest.get("date"))
    if said != (day.measurement, day.site_id, day.date):
        raise ManifestError(
            f"manifest is for measurement={said[0]!r} site_id={manifest.get('site_id')!r} date={said[2]!r}, "
            f"its key for measurement={day.measurement!r} site_id={day.site_id!r} date={day.date!r}"
        )


def _check_part(part: Any, day: ArchiveDay, position: int) -> int:
    """The part's index, once its place and size make sense for this day."""
    if not isinstance(part, dict):
        raise ManifestError(f"part {position} is not an object")
    index, name, rows = part.get("index"), part.get("file"), part.get("rows")
    if type(index) is not int or index < 0:
        raise ManifestError(f"part {position}: index {index!r} is not a whole number")
    if not isinstance(name, str) or "/" in name or not name.endswith(".parquet"):
        raise ManifestError(f"part {index}: file {name!r} is not a Parquet file name")
    key = part.get("key", f"{day.directory}/{name}")
    if key != f"{day.directory}/{name}":
        raise ManifestError(f"part {index}: key {key!r} is outside the day's directory {day.directory!r}")
    if type(rows) is not int or rows < 0:
        raise ManifestError(f"part {index}: rows {rows!r} is not a count")
    return index


def _part_columns(part: dict[str, Any], index: int) -> list[Column]:
    raw = part.get("columns")
    if isinstance(raw, dict):  # version 1: {name: type}, keys sorted by the writer
        pairs = sorted(raw.items(), key=lambda item: item[0] != TIME_COLUMN)
    elif isinstance(raw, list):  # version 2: [{"name", "type"}] in file order
        if not all(isinstance(c, dict) for c in raw):
            raise ManifestError(f"part {index}: a column is not an object")
        pairs = [(c.get("name"), c.get("type")) for c in raw]
    else:
        raise ManifestError(f"part {index}: no columns")
    columns = []
    for name, arrow_type in pairs:
        if not isinstance(name, str) or not name.strip() or not isinstance(arrow_type, str):
            raise ManifestError(f"part {index}: column {name!r} has no usable name or type")
        try:
            columns.append(Column(name, hive_type(arrow_type)))
        except ManifestError as exc:
            raise ManifestError(f"part {index}: column {name!r}: {exc}") from None
    if not any(c.name == TIME_COLUMN and c.type == "timestamp" for c in columns):
        raise ManifestError(f"part {index}: no {TIME_COLUMN!r} timestamp column")
    return columns


def _union(per_part: list[list[Column]]) -> tuple[list[Column], list[str]]:
    """Every column once (names compared as Glue does, case-insensitively); where
    parts disagree on a type the first part's type is kept and the difference named."""
    kept: dict[str, Column] = {}
    conflicts: list[str] = []
    for columns in per_part:
        for column in columns:
            first = kept.setdefault(column.name.lower(), column)
            if first.type != column.type:
                conflicts.append(f"{column.name}: {first.type} <- {column.type}")
    return list(kept.values()), conflicts
