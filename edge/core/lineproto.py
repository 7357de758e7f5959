"""InfluxDB 1.x line protocol, written and read in one place. Pure.

Writing a name
--------------
Each rule was found by writing the name to InfluxDB 1.6 and reading back what it
stored (``tests/test_parser_influxdb.py`` keeps checking it). ``escape`` applies,
in this order, to a measurement, tag key, tag value or field key taken from a
gateway document:

1. A lone surrogate (invalid Unicode, only reachable through ``\\udXXX`` escapes in
   the JSON) becomes U+FFFD.
2. Backslashes line protocol cannot carry where they stand are dropped: a run of
   backslashes at the end of any name (InfluxDB would read it as escaping the
   separator after it), in a measurement or field key a run right before a
   character InfluxDB unescapes there (measurement: comma, space, ``=``, ``"``;
   field key: comma, space, ``=``), which InfluxDB would otherwise eat or refuse,
   and in a tag key or value a run right before a space. InfluxDB splits a body
   into lines pairing backslashes (``\\`` is one pair), but reads tags taking a
   space with a backslash right before it as escaped: so ``\\ `` in a tag makes
   the line splitter think the fields began, a later ``"`` in a tag value then
   opens a "string", and the newline after the line is swallowed: InfluxDB joins
   it with the next line and refuses both with 400 (found by the differential
   test). Tag keys and values keep a backslash before a comma or ``=``: InfluxDB
   reads them back verbatim.
3. A name InfluxDB would skip or refuse gets a backslash in front, which InfluxDB
   keeps: a measurement starting with ``#`` (the line would be a comment, written
   with 204 and stored nowhere) and the field key ``time`` (refused, or silently
   dropped when the line has other fields). So ``#x`` is stored as ``\\#x`` and
   ``time`` as ``\\time``.
4. Control characters that cannot stand in a line or a query: TAB, LF, CR and FF
   are written as ``\\t``, ``\\n``, ``\\r``, ``\\f`` (Telegraf's convention: stored as
   a backslash and a letter), and NUL as ``\\0`` (InfluxDB would store it, skip it
   at the start of a name, and InfluxQL cannot name it: its parser stops there).
5. ``quote``: comma and space everywhere, ``=`` in tag keys, tag values and field
   keys, ``"`` in field keys.

A name left empty by these rules cannot be stored: the functions return None and
the caller reports it. A name InfluxDB already stores (read back from it, or from
the archive) needs rule 5 only: ``quote``. A string field value escapes ``\\`` and
``"`` (``string_value``); InfluxDB unescapes exactly those two inside quotes.

Reading a line
--------------
``read`` splits a line as InfluxDB 1.x's scanner does: in the measurement and the
tags a character is escaped when a backslash stands right before it (so
``\\\\ `` in a tag key is a backslash and an escaped space); in the field set a
backslash escapes the character after it and pairs are skipped, and string values
are quoted. Names are unescaped as InfluxDB stores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MEASUREMENT, TAG, FIELD = 0, 1, 2

_CONTROL = str.maketrans({"\n": r"\n", "\r": r"\r", "\t": r"\t", "\f": r"\f", "\x00": r"\0"})
ESCAPED: dict[int, dict[str, str]] = {
    MEASUREMENT: {",": r"\,", " ": r"\ "},
    TAG: {",": r"\,", " ": r"\ ", "=": r"\="},
    FIELD: {",": r"\,", " ": r"\ ", "=": r"\=", '"': r"\""},
}
_QUOTE = {kind: str.maketrans(table) for kind, table in ESCAPED.items()}
# \Z, not $: "$" also matches before a final newline.
_STRAY_BACKSLASHES = {
    MEASUREMENT: re.compile(r'\\+(?=[, ="])|\\+\Z'),
    TAG: re.compile(r"\\+(?= )|\\+\Z"),
    FIELD: re.compile(r"\\+(?=[, =])|\\+\Z"),
}
_SURROGATE = re.compile("[\ud800-\udfff]")

# Inside a string field value, in this order (the backslash first).
STRING_ESCAPES: tuple[tuple[str, str], ...] = (("\\", "\\\\"), ('"', '\\"'))

_caches: dict[int, dict[str, bytes | None]] = {MEASUREMENT: {}, TAG: {}, FIELD: {}}
_MAX_CACHED = 100_000

# ---------------------------------------------------------------- writing


def escape(text: str, kind: int) -> bytes | None:
    """``text`` as it goes into a line (``kind``: MEASUREMENT, TAG or FIELD), or
    None when nothing of it can be stored."""
    cache = _caches[kind]
    try:
        return cache[text]
    except KeyError:
        pass
    stored = stored_name(text, kind)
    out = None if stored is None else quote(stored, kind).encode("utf-8")
    if len(cache) < _MAX_CACHED:
        cache[text] = out
    return out


_measurements, _tags, _field_keys = _caches[MEASUREMENT], _caches[TAG], _caches[FIELD]


def measurement(text: str) -> bytes | None:
    try:
        return _measurements[text]
    except KeyError:
        return escape(text, MEASUREMENT)


def tag(text: str) -> bytes | None:
    try:
        return _tags[text]
    except KeyError:
        return escape(text, TAG)


def field_key(text: str) -> bytes | None:
    try:
        return _field_keys[text]
    except KeyError:
        return escape(text, FIELD)


def stored_name(text: str, kind: int) -> str | None:
    """The name InfluxDB stores for ``text``: rules 1-4 (None when nothing is left)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    if "\\" in text:
        text = _STRAY_BACKSLASHES[kind].sub("", text)
    if not text:
        return None
    if kind == MEASUREMENT:
        if text[0] == "#":
            text = "\\" + text
    elif kind == FIELD and text == "time":
        text = "\\" + text
    return text.translate(_CONTROL)


def quote(stored: str, kind: int) -> str:
    """A name InfluxDB stores as ``stored``, as a line writes it (rule 5)."""
    return stored.translate(_QUOTE[kind])


def string_value(text: str) -> str:
    """A string field value, quoted."""
    for plain, escaped in STRING_ESCAPES:
        text = text.replace(plain, escaped)
    return f'"{text}"'


# ---------------------------------------------------------------- reading

_UNESCAPE = {
    MEASUREMENT: re.compile(r'\\([, ="])'),
    TAG: re.compile(r"\\([, =])"),
    FIELD: re.compile(r'\\([, ="])'),
}
_STRING_UNESCAPE = re.compile(r'\\([\\"])')
_BOOLEANS = {"t": True, "T": True, "true": True, "True": True, "TRUE": True,
             "f": False, "F": False, "false": False, "False": False, "FALSE": False}


class LineError(ValueError):
    """A line too broken to split."""


@dataclass(frozen=True)
class Line:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, str]  # field key -> the value as written (see ``value``, ``value_type``)
    timestamp: int | None


def unescape(text: str, kind: int) -> str:
    """A name as written in a line -> the name InfluxDB stores."""
    return _UNESCAPE[kind].sub(r"\1", text) if "\\" in text else text


def _series_end(text: str, start: int = 0) -> int:
    """Index of the first space in ``text`` no backslash stands right before
    (InfluxDB's rule for the measurement and the tags), or len(text)."""
    i = text.find(" ", start)
    while i > 0 and text[i - 1] == "\\":
        i = text.find(" ", i + 1)
    return len(text) if i < 0 else i


def _split_series(text: str, sep: str) -> list[str]:
    """``text`` split on each ``sep`` no backslash stands right before."""
    parts, start, i = [], 0, text.find(sep)
    while i >= 0:
        if i == 0 or text[i - 1] != "\\":
            parts.append(text[start:i])
            start = i + 1
        i = text.find(sep, i + 1)
    parts.append(text[start:])
    return parts


def series_key(line: bytes) -> bytes:
    """The series key of a line (measurement and tags, escaped as written): what
    InfluxDB keys a series by, and the Kafka key of a parsed record."""
    i = line.find(b" ")
    while i > 0 and line[i - 1] == 0x5C:  # a backslash right before: escaped
        i = line.find(b" ", i + 1)
    return line if i < 0 else line[:i]


def read_series(key: str) -> tuple[str, dict[str, str]]:
    """(measurement, tags) of a series key."""
    parts = _split_series(key, ",")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        kv = _split_series(part, "=")
        if len(kv) != 2 or not kv[0]:
            raise LineError(f"bad tag {part[:80]!r}")
        tags[unescape(kv[0], TAG)] = unescape(kv[1], TAG)
    return unescape(parts[0], MEASUREMENT), tags


def tag_value(key: bytes, name: bytes) -> str | None:
    """The value of tag ``name`` (as written) in a series key, unescaped; None if absent."""
    marker = b"," + name + b"="
    at = key.find(marker)
    while at > 0 and key[at - 1] == 0x5C:
        at = key.find(marker, at + 1)
    if at < 0:
        return None
    start = end = at + len(marker)
    while True:
        end = key.find(b",", end)
        if end < 0:
            end = len(key)
            break
        if key[end - 1] != 0x5C:
            break
        end += 1
    return unescape(key[start:end].decode("utf-8", "replace"), TAG)


def _split_fields(text: str, start: int) -> tuple[list[tuple[str, str]], int]:
    """The field set from ``start``: [(key as written, value as written)], and where it ends."""
    pairs: list[tuple[str, str]] = []
    i, n, begin, equals, quoted = start, len(text), start, -1, False
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if quoted:
            quoted = c != '"'
        elif c == '"' and equals >= 0:
            quoted = True
        elif c == "=" and equals < 0:
            equals = i
        elif c in ", ":
            if equals < 0:
                raise LineError(f"field without a value: {text[begin:i][:80]!r}")
            pairs.append((text[begin:equals], text[equals + 1 : i]))
            begin, equals = i + 1, -1
            if c == " ":
                return pairs, i
        i += 1
    if quoted or equals < 0:
        raise LineError(f"unterminated field: {text[begin:][:80]!r}")
    pairs.append((text[begin:equals], text[equals + 1 :]))
    return pairs, n


def read(line: bytes | str) -> Line:
    """Split one line into measurement, tags, fields and timestamp; raises LineError."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    end = _series_end(text)
    if end >= len(text):
        raise LineError(f"no field set: {text[:120]!r}")
    measurement_, tags = read_series(text[:end])
    pairs, after = _split_fields(text, end + 1)
    fields = {unescape(k, FIELD): v for k, v in pairs}
    rest = text[after:].strip()
    if rest and not rest.lstrip("-").isdigit():
        raise LineError(f"bad timestamp {rest[:40]!r}")
    return Line(measurement_, tags, fields, int(rest) if rest else None)


def value_type(raw: str) -> str:
    """InfluxDB's name for the type of a field value as written."""
    if raw.startswith('"'):
        return "string"
    if raw in _BOOLEANS:
        return "boolean"
    if raw.endswith("i"):
        return "integer"
    if raw.endswith("u"):
        return "unsigned"
    return "float"


def value(raw: str) -> float | int | bool | str:
    """A field value as written -> its Python value."""
    kind = value_type(raw)
    if kind == "string":
        return _STRING_UNESCAPE.sub(r"\1", raw[1:-1])
    if kind == "boolean":
        return _BOOLEANS[raw]
    if kind in ("integer", "unsigned"):
        return int(raw[:-1])
    return float(raw)
