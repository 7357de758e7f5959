"""Field sets (``soc=31.5,run=true``) of one point. Pure.

Every JSON number is a float field, every boolean a boolean field (one type per
field forever, so InfluxDB never sees an int/float conflict).

Speed: for the common object of plain keys and scalar values, orjson formats the
whole object (``{"soc":31.5,"run":true}`` is one C call), which becomes the field
set by removing quotes and braces (:func:`fast_field_set`). That is taken only when
the encoded bytes prove every key is plain (no escapes, spaces, commas, equals
signs, colons, NaN or ``time``); anything else goes through :class:`FieldSet`,
which names, escapes and checks each field.
"""

from __future__ import annotations

import math
import re

import orjson

from edge.core import lineproto

SCALARS = frozenset((float, int, bool))

# Keys known to need no escaping in line protocol (and not to be "time"): the
# shortcut is taken only for these. Learnt as they are first seen.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_plain_keys: set[str] = set()
_MAX_PLAIN_KEYS = 50_000

_COLON_TO_EQUALS = bytes.maketrans(b":", b"=")


def _all_plain(keys) -> bool:
    if _plain_keys.issuperset(keys):
        return True
    for key in keys:
        if key not in _plain_keys:
            if key.__class__ is not str or key == "time" or not _PLAIN_KEY.fullmatch(key):
                return False
            if len(_plain_keys) < _MAX_PLAIN_KEYS:
                _plain_keys.add(key)
    return True


def fast_field_set(fields: dict) -> bytes | None:
    """``soc=31.5,run=true`` via one orjson call, when every key is plain and every
    value a number or boolean. None when :class:`FieldSet` must do it.

    The encoding ``{"soc":31.5,"run":true}`` becomes the field set by deleting the
    quotes and turning colons into equals signs. It is right only if exactly two
    quotes per key were deleted (a string value, or a nested object's keys, add
    more), no brace or bracket is left (an object or a list) and no value is null
    (JSON null, or NaN/infinity, which orjson writes as null).
    """
    if not _plain_keys.issuperset(fields) and not _all_plain(fields):
        return None
    try:
        body = orjson.dumps(fields)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits
        return None
    field_set = body[1:-1].translate(_COLON_TO_EQUALS, b'"')
    if (
        len(body) - 2 - len(field_set) != 2 * len(fields)
        or b"{" in field_set
        or b"[" in field_set
        or b"null" in field_set
    ):
        return None
    return field_set


def drop_field(field_set: bytes, pair: bytes) -> bytes:
    """``field_set`` without the ``key=value`` pair (present exactly once)."""
    if field_set.startswith(pair + b","):
        return field_set[len(pair) + 1 :]
    if field_set == pair:
        return b""
    at = field_set.find(b"," + pair + b",")
    if at >= 0:
        return field_set[:at] + field_set[at + len(pair) + 1 :]
    if field_set.endswith(b"," + pair):
        return field_set[: -len(pair) - 1]
    return field_set


def list_field_values(items: list) -> list[bytes] | None:
    """The formatted values of a list of numbers and booleans (one orjson call), or
    None when it holds anything else, a NaN/infinity (orjson writes null) or an
    integer beyond 64 bits."""
    for item in items:
        if item.__class__ not in SCALARS:
            return None
    try:
        body = orjson.dumps(items)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if b"null" in body:
        return None
    return body[1:-1].split(b",")


_list_keys: dict[str, list[bytes | None]] = {}


def list_field_keys(name: str, count: int) -> list[bytes | None]:
    """Escaped field keys ``<name>_0`` .. ``<name>_<count-1>`` (None: not storable)."""
    keys = _list_keys.get(name)
    if keys is None or len(keys) < count:
        keys = [lineproto.field_key(f"{name}_{i}") for i in range(count)]
        if len(_list_keys) < 10_000:
            _list_keys[name] = keys
    return keys


class FieldSet:
    """The fields of one point, added one by one: each name as InfluxDB stores it,
    each value formatted, non-finite numbers dropped (and counted in ``dropped``).
    Two JSON names InfluxDB would store as one field cannot both be kept: the first
    added wins. ``sources`` remembers where each field came from (a path relative
    to the point), for naming the collision.
    """

    __slots__ = ("values", "sources", "dropped")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.sources: dict[bytes, tuple] = {}
        self.dropped = 0

    def add(self, name: str, value: object, source: tuple) -> str | None:
        """Add one reading. None when it was added (or dropped as NaN/infinite),
        else why it cannot be stored."""
        key = lineproto.field_key(name)
        if key is None:
            return f"field name {name!r:.60} cannot be stored in InfluxDB"
        if key in self.values:
            return f"its field name {key.decode()!r:.60} is already taken by {relative_path(self.sources[key])}"
        if value.__class__ is bool:
            formatted = b"true" if value else b"false"
        else:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                self.dropped += 1
                return None
            formatted = repr(number).encode()
        self.values[key] = formatted
        self.sources[key] = source
        return None

    def encode(self) -> bytes:
        return b",".join(key + b"=" + value for key, value in self.values.items())


def relative_path(source: tuple) -> str:
    """``("temps", 0)`` -> ``temps[0]``."""
    return "".join(f"[{step}]" if step.__class__ is int else f".{step}" for step in source).lstrip(".")


_NON_FINITE_WORDS = (b"NaN", b"Infinity", b"-Infinity")


def written_as(raw: bytes, key: object, value: object) -> str:
    """A non-finite reading as the document wrote it (``1e999``, ``NaN``), found
    by its key in ``raw``; else as Python prints it (a list element, a key written
    with escapes). Only called for readings that are dropped: off the hot path."""
    name = _json_name(key) if raw else None
    if name is not None:
        for match in re.finditer(rb'"' + name + rb'"\s*:\s*(-?[0-9A-Za-z][0-9A-Za-z.+\-]*)', raw):
            literal = match.group(1)
            if literal in _NON_FINITE_WORDS or not _finite(literal):
                return literal[:60].decode("ascii", "replace")
    text = repr(value) if value.__class__ is float else str(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} digits)"


def _finite(literal: bytes) -> bool:
    try:
        return math.isfinite(float(literal))
    except (ValueError, OverflowError):
        return False


def _json_name(key: object) -> bytes | None:
    """``key`` as a pattern for its JSON spelling; None when it has none (not a
    string, or a lone surrogate that has no UTF-8)."""
    if key.__class__ is not str:
        return None
    try:
        return re.escape(orjson.dumps(key)[1:-1])
    except orjson.JSONEncodeError:
        return None
