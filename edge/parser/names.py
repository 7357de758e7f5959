"""Names as InfluxDB 1.x stores them: line-protocol escaping, plus the few renamings
line protocol forces. Pure.

Each rule below was found by writing the name to InfluxDB 1.6 and reading back
what it stored (``tests/test_parser_influxdb.py`` keeps checking it). Applied in
this order to a measurement, tag key, tag value or field key:

1. A lone surrogate (invalid Unicode, only reachable through ``\\udXXX`` escapes in
   the JSON) becomes U+FFFD.
2. Backslashes line protocol cannot carry where they stand are dropped: a run of
   backslashes at the end of any name (InfluxDB would read it as escaping the
   separator after it), and in a measurement or field key a run right before a
   character InfluxDB unescapes there (measurement: comma, space, ``=``, ``"``;
   field key: comma, space, ``=``), which InfluxDB would otherwise eat or refuse.
   Tag keys and values keep such backslashes: InfluxDB reads them back verbatim.
3. A name InfluxDB would skip or refuse gets a backslash in front, which InfluxDB
   keeps: a measurement starting with ``#`` (the line would be a comment, written
   with 204 and stored nowhere) and the field key ``time`` (refused, or silently
   dropped when the line has other fields). So ``#x`` is stored as ``\\#x`` and
   ``time`` as ``\\time``.
4. Control characters that cannot stand in a line or a query: TAB, LF, CR and FF
   are written as ``\\t``, ``\\n``, ``\\r``, ``\\f`` (Telegraf's convention: stored as
   a backslash and a letter), and NUL as ``\\0`` (InfluxDB would store it, skip it
   at the start of a name, and InfluxQL cannot name it: its parser stops there).
5. Escaping: comma and space everywhere, ``=`` in tag keys, tag values and field
   keys, ``"`` in field keys.

A name left empty by these rules cannot be stored: the functions return None and
the caller reports it.
"""

from __future__ import annotations

import re

MEASUREMENT, TAG, FIELD = 0, 1, 2

_CONTROL = str.maketrans({"\n": r"\n", "\r": r"\r", "\t": r"\t", "\f": r"\f", "\x00": r"\0"})
_ESCAPES = {
    MEASUREMENT: str.maketrans({",": r"\,", " ": r"\ "}),
    TAG: str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="}),
    FIELD: str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", '"': r'\"'}),
}
# \Z, not $: "$" also matches before a final newline.
_STRAY_BACKSLASHES = {
    MEASUREMENT: re.compile(r'\\+(?=[, ="])|\\+\Z'),
    TAG: re.compile(r"\\+\Z"),
    FIELD: re.compile(r"\\+(?=[, =])|\\+\Z"),
}
_SURROGATE = re.compile("[\ud800-\udfff]")

_caches: dict[int, dict[str, bytes | None]] = {MEASUREMENT: {}, TAG: {}, FIELD: {}}
_MAX_CACHED = 100_000


def escape(text: str, kind: int) -> bytes | None:
    """``text`` as it goes into a line (``kind``: MEASUREMENT, TAG or FIELD), or
    None when nothing of it can be stored."""
    cache = _caches[kind]
    try:
        return cache[text]
    except KeyError:
        pass
    out = _escape(text, kind)
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


def _escape(text: str, kind: int) -> bytes | None:
    stored = stored_name(text, kind)
    if stored is None:
        return None
    return stored.translate(_ESCAPES[kind]).encode("utf-8")
