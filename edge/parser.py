"""Where a reading is parsed: one gateway JSON document -> InfluxDB line protocol.

Pure: no clients, no I/O. The data model (design brief):

- one point per element of ``FieldDeviceLayer.<fieldN>.service``; measurement =
  the field key (``field1``); tags ``device`` (the field's ``Name``), ``service_id``
  (the element's ``id`` or ``index`` as an integer string: ``"01"`` -> ``1``),
  ``site_id`` (``header.site_id`` verbatim);
- fields: every JSON number as a float, every boolean as a boolean; strings are not
  fields;
- a nested object (or list of objects) inside an element is its own point,
  measurement ``<fieldN>_<key>``, the same tags plus ``<key>_index`` (its own
  ``index``, else its 1-based position);
- time: ``header.timestamp`` (``YYYY-MM-DD HH:MM:SS``) in the site's time zone
  (default UTC), nanoseconds;
- NaN and infinities are dropped and counted; a point left without fields is not
  emitted; a message with no usable timestamp or FieldDeviceLayer raises
  ``ParseError`` (never a point at time 0).

Tags are written sorted by key, so the line's series key is InfluxDB's own and can
be used as the Kafka key (one series -> one partition).

Speed: orjson decodes; orjson also formats each element's numeric/boolean fields
(``{"soc":31.5,"run":true}`` is one C call), which is then turned into a line-protocol
field set by removing quotes and braces. That shortcut is taken only when the
encoded bytes prove every key is plain (no escapes, spaces, commas, equals signs,
colons, NaN or ``time``); anything else takes the general path, which escapes each
key. A document orjson rejects (the gateway's raw control characters inside
strings, NaN/Infinity literals, numbers out of range) is retried after escaping
control characters, then with the standard library's lenient decoder.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

__all__ = ["ParseError", "ParseResult", "TimeZones", "parse", "to_lines"]


class ParseError(ValueError):
    """The message cannot be turned into any point; the text says why."""


@dataclass(frozen=True)
class TimeZones:
    """Site id -> time zone of its ``header.timestamp``; others use ``default``."""

    default: tzinfo = timezone.utc
    sites: Mapping[str, tzinfo] = field(default_factory=dict)

    @classmethod
    def from_names(cls, default: str = "UTC", sites: Mapping[str, str] | None = None) -> "TimeZones":
        try:
            return cls(
                default=_zone(default),
                sites={site: _zone(name) for site, name in (sites or {}).items()},
            )
        except ZoneInfoNotFoundError as exc:
            raise ValueError(f"unknown time zone: {exc}") from None

    def for_site(self, site_id: str) -> tzinfo:
        return self.sites.get(site_id, self.default)


def _zone(name: str) -> tzinfo:
    return timezone.utc if name.upper() == "UTC" else ZoneInfo(name)


UTC_ONLY = TimeZones()


@dataclass
class ParseResult:
    """Points of one message, plus what was unusable in it.

    ``points`` are ``(series_key, line)`` pairs; ``problems`` names the parts of an
    otherwise usable message that could not be used (the caller dead-letters the
    original with them); ``dropped_values`` counts NaN/infinite readings removed;
    ``empty_points`` counts points not emitted because no field was left.
    """

    points: list[tuple[bytes, bytes]]
    problems: list[str]
    dropped_values: int = 0
    empty_points: int = 0

    @property
    def lines(self) -> list[bytes]:
        return [line for _, line in self.points]


def to_lines(raw: bytes) -> list[bytes]:
    """Line-protocol lines (no trailing newline) for one message, time zone UTC."""
    return parse(raw).lines


# ---------------------------------------------------------------- decoding

# Control characters other than \t \n \r: never valid outside a JSON string, and
# inside one the gateway sends them raw (sample.json has a backspace). Writing them
# as \u00XX escapes keeps their meaning. translate+find runs at C speed; a regex
# substitution over the same 28 KB took five times longer.
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))
_CONTROL_TO_NUL = bytes.maketrans(_CONTROL, b"\x00" * len(_CONTROL))


def _escape_control_bytes(raw: bytes) -> bytes | None:
    """``raw`` with raw control characters escaped, or None when it has none."""
    marked = raw.translate(_CONTROL_TO_NUL)
    at = marked.find(0)
    if at < 0:
        return None
    pieces: list[bytes] = []
    start = 0
    while at >= 0:
        pieces.append(raw[start:at])
        pieces.append(b"\\u%04x" % raw[at])
        start = at + 1
        at = marked.find(0, start)
    pieces.append(raw[start:])
    return b"".join(pieces)


_CONTROL_SET = frozenset(_CONTROL)
_MAX_SPOT_FIXES = 8


def _decode(raw: bytes) -> object:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ParseError(f"message must be bytes, not {type(raw).__name__}")
    if not raw:
        raise ParseError("empty message")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        at = exc.pos
    raw = bytes(raw)
    # The gateway's usual fault: a raw control character inside a string. orjson
    # says where it stopped; escape that character and go on (a few times at most,
    # and only where the byte there really is one), else take the general path.
    fixed = raw
    for _ in range(_MAX_SPOT_FIXES):
        if not (0 <= at < len(fixed)) or fixed[at] not in _CONTROL_SET:
            break
        fixed = b"%s\\u%04x%s" % (fixed[:at], fixed[at], fixed[at + 1 :])
        try:
            return orjson.loads(fixed)
        except orjson.JSONDecodeError as exc:
            at = exc.pos
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"message is not UTF-8: {exc}") from None
    escaped = _escape_control_bytes(raw)
    if escaped is not None:
        try:
            return orjson.loads(escaped)
        except orjson.JSONDecodeError:
            pass
    try:
        # Lenient: raw \t \n \r inside strings, NaN/Infinity, out-of-range numbers.
        return json.loads(text, strict=False)
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply") from None
    except ValueError:
        pass
    try:
        orjson.loads(escaped if escaped is not None else raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc}") from None
    raise ParseError("invalid JSON")  # pragma: no cover - orjson accepted it above


# ---------------------------------------------------------------- escaping

# Line protocol escaping (as InfluxDB 1.x and Telegraf do): measurement escapes
# comma and space; tag keys/values and field keys also escape '='. Newlines and
# tabs cannot stand raw in a line, so they are written as \n and \t (Telegraf's
# choice); a trailing backslash is doubled so it cannot escape the separator.
_MEASUREMENT_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\f": r"\f"})
_KEY_ESC = str.maketrans(
    {",": r"\,", " ": r"\ ", "=": r"\=", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\f": r"\f"}
)

_escape_cache: dict[tuple[str, bool], bytes] = {}


def _esc(text: str, measurement: bool = False) -> bytes:
    cached = _escape_cache.get((text, measurement))
    if cached is not None:
        return cached
    out = text.translate(_MEASUREMENT_ESC if measurement else _KEY_ESC)
    if out.endswith("\\") and not out.endswith("\\\\"):
        out += "\\"
    encoded = out.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
    if len(_escape_cache) < 100_000:
        _escape_cache[(text, measurement)] = encoded
    return encoded


# ---------------------------------------------------------------- header


def _timestamp_ns(value: object, zone: tzinfo) -> int:
    if not isinstance(value, str) or not value:
        raise ParseError(f"header.timestamp missing or not a string: {value!r:.60}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ParseError(f"header.timestamp not 'YYYY-MM-DD HH:MM:SS': {value!r:.60}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    delta = moment - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if not _MIN_NS <= ns <= _MAX_NS:
        raise ParseError(f"header.timestamp out of range: {value!r:.60}")
    return ns


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_NS = 1  # never a point at time 0 (or before the epoch)
_MAX_NS = 9_223_372_036_854_775_806  # InfluxDB's largest timestamp (2262-04-11)


def _site_id(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ParseError(f"header.site_id missing or not a non-empty string: {value!r:.60}")


def _ident(value: object) -> str | None:
    """An element's id/index as tag text: ``"01"`` -> ``"1"``, 2 -> ``"2"``."""
    cls = value.__class__
    if cls is int:
        return str(value)
    if cls is str:
        stripped = value.strip()
        if stripped.isdigit():
            return str(int(stripped))
        return value if stripped else None
    if cls is float and value.is_integer():
        return str(int(value))
    return None


# ---------------------------------------------------------------- fields

_SCALARS = frozenset((float, int, bool))
_CONTAINERS = frozenset((dict, list))

# Keys known to need no escaping in line protocol (and not to be "time"): the
# shortcut below is taken only for these. Learnt as they are first seen.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_plain_keys: set[str] = set()
_MAX_PLAIN_KEYS = 50_000


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


_COLON_TO_EQUALS = bytes.maketrans(b":", b"=")


def _field_set_fast(fields: dict) -> bytes | None:
    """``soc=31.5,run=true`` via one orjson call, when every key is plain and every
    value a number or boolean. None when the general path must do it.

    The encoding ``{"soc":31.5,"run":true}`` becomes the field set by deleting the
    quotes and turning colons into equals signs. It is right only if exactly two
    quotes per key were deleted (a string value, or a nested object's keys, add
    more), no brace or bracket is left (an empty nested object or a list of
    numbers) and no value is null (JSON null, or NaN/infinity, which orjson
    writes as null).
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


def _field_set_general(fields: dict, result: ParseResult) -> bytes:
    parts: list[bytes] = []
    for key, value in fields.items():
        if not isinstance(key, str) or not key or key == "time":
            result.problems.append(f"unusable field name {key!r:.40}")
            continue
        if value.__class__ is bool:
            parts.append(_esc(key) + (b"=true" if value else b"=false"))
            continue
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            result.dropped_values += 1
            continue
        parts.append(_esc(key) + b"=" + repr(number).encode())
    return b",".join(parts)


# ---------------------------------------------------------------- document walk


def parse(raw: bytes, zones: TimeZones = UTC_ONLY) -> ParseResult:
    """All points of one message; raises ParseError when none can be made."""
    doc = _decode(raw)
    if doc.__class__ is not dict:
        raise ParseError(f"top level is {_json_type(doc)}, expected an object")
    header = doc.get("header")
    if header.__class__ is not dict:
        raise ParseError(f"header missing or not an object (got {_json_type(header)})")
    site = _site_id(header.get("site_id"))
    ts_ns = _timestamp_ns(header.get("timestamp"), zones.for_site(site))
    layer = doc.get("FieldDeviceLayer")
    if layer.__class__ is not dict:
        raise ParseError(f"FieldDeviceLayer missing or not an object (got {_json_type(layer)})")

    result = ParseResult(points=[], problems=[])
    suffix = b" " + str(ts_ns).encode()
    site_tag = b",site_id=" + _esc(site)
    for field_key, device in layer.items():
        if not field_key:
            result.problems.append("FieldDeviceLayer: entry with an empty name")
            continue
        if device.__class__ is not dict:
            result.problems.append(f"FieldDeviceLayer.{field_key}: not an object ({_json_type(device)})")
            continue
        services = device.get("service")
        if services.__class__ is dict:
            services = [services]
        elif services.__class__ is not list:
            result.problems.append(
                f"FieldDeviceLayer.{field_key}.service: missing or not a list ({_json_type(services)})"
            )
            continue
        name = device.get("Name")
        device_tag = b",device=" + _esc(name) if name.__class__ is str and name else b""
        measurement = _esc(field_key, measurement=True)
        for position, element in enumerate(services, 1):
            if element.__class__ is dict:
                # The common case: a numeric id/index and only numbers/booleans.
                id_key = "id" if "id" in element else "index"
                ident = element.get(id_key)
                if ident.__class__ is int:
                    field_set = _field_set_fast(element)
                    if field_set is not None:
                        ident_b = str(ident).encode()
                        field_set = _drop_field(field_set, id_key.encode() + b"=" + ident_b)
                        series_key = measurement + device_tag + b",service_id=" + ident_b + site_tag
                        if field_set:
                            result.points.append((series_key, series_key + b" " + field_set + suffix))
                        else:
                            result.empty_points += 1
                        continue
            else:
                result.problems.append(
                    f"FieldDeviceLayer.{field_key}.service[{position - 1}]: not an object ({_json_type(element)})"
                )
                continue
            _element_points(element, position, measurement, field_key, device_tag, site_tag, suffix, result)

    if not result.points:
        detail = "; ".join(result.problems[:5]) or "no numeric or boolean readings"
        raise ParseError(f"no usable readings: {detail}")
    return result


def _drop_field(field_set: bytes, pair: bytes) -> bytes:
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


def _element_points(
    element: dict,
    position: int,
    measurement: bytes,
    field_key: str,
    device_tag: bytes,
    site_tag: bytes,
    suffix: bytes,
    result: ParseResult,
) -> None:
    """A service element that is not all numbers with a numeric id: string id,
    nested objects, strings, nulls, unusual keys."""
    if "id" in element:
        id_key = "id"
    elif "index" in element:
        id_key = "index"
    else:
        id_key = None
    service_id = _ident(element[id_key]) if id_key else None
    if service_id is None:
        service_id = str(position)
    service_tag = b",service_id=" + _esc(service_id)

    # Strings are not fields (by design), nulls carry nothing; nested objects
    # become their own points.
    others = [k for k, v in element.items() if v.__class__ not in _SCALARS]
    fields = element.copy()
    for key in others:
        del fields[key]
        value = element[key]
        cls = value.__class__
        if cls is dict:
            _nested_points(key, [value], measurement, field_key, (device_tag, service_tag, site_tag), suffix, result)
        elif cls is list and value and value[0].__class__ is dict:
            _nested_points(key, value, measurement, field_key, (device_tag, service_tag, site_tag), suffix, result)
    if id_key is not None:
        fields.pop(id_key, None)
    _emit(measurement + device_tag + service_tag + site_tag, fields, suffix, result)


def _nested_points(
    key: str,
    items: list,
    measurement: bytes,
    field_key: str,
    parent_tags: tuple[bytes, bytes, bytes],
    suffix: bytes,
    result: ParseResult,
) -> None:
    nested_measurement = measurement + b"_" + _esc(key, measurement=True)
    index_tag, slot = _index_tag(key)
    for position, item in enumerate(items, 1):
        if item.__class__ is not dict:
            result.problems.append(f"FieldDeviceLayer.{field_key}...{key}[{position - 1}]: not an object")
            continue
        index = item.get("index")
        own = _ident(index) or str(position)
        tags = list(parent_tags)
        tags.insert(slot, index_tag + _esc(own))
        series_key = nested_measurement + b"".join(tags)
        if index.__class__ is int:
            field_set = _field_set_fast(item)
            if field_set is not None:
                field_set = _drop_field(field_set, b"index=" + own.encode())
                if field_set:
                    result.points.append((series_key, series_key + b" " + field_set + suffix))
                else:
                    result.empty_points += 1
                continue
        fields = {k: v for k, v in item.items() if v.__class__ in _SCALARS}
        fields.pop("index", None)
        _emit(series_key, fields, suffix, result)


# The parent's tag keys, in the sorted order they are written in.
_PARENT_TAG_KEYS = ("device", "service_id", "site_id")
_index_tags: dict[str, tuple[bytes, int]] = {}


def _index_tag(key: str) -> tuple[bytes, int]:
    """``,<key>_index=`` and where it goes among the parent's sorted tags."""
    found = _index_tags.get(key)
    if found is None:
        tag_key = f"{key}_index"
        slot = sum(1 for parent in _PARENT_TAG_KEYS if parent < tag_key)
        found = (b"," + _esc(tag_key) + b"=", slot)
        if len(_index_tags) < 10_000:
            _index_tags[key] = found
    return found


def _emit(series_key: bytes, fields: dict, suffix: bytes, result: ParseResult) -> None:
    if not fields:
        result.empty_points += 1
        return
    field_set = _field_set_fast(fields)
    if field_set is None:
        field_set = _field_set_general(fields, result)
        if not field_set:
            result.empty_points += 1
            return
    result.points.append((series_key, series_key + b" " + field_set + suffix))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        value.__class__, value.__class__.__name__
    )
