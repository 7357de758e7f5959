"""A strict reader of InfluxDB line protocol, for checking what the parser emits.

Written for the tests, independently of edge.parser: it splits on unescaped
separators and rejects anything InfluxDB 1.x would not accept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_FLOAT = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | bool]
    time_ns: int


def _split(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    # As InfluxDB 1.x reads it: only comma, space and equals are escapes; any other
    # backslash is literal (so a newline written as \n stays backslash-n).
    return re.sub(r"\\([, =])", lambda m: m.group(1), text)


def read_line(line: bytes) -> Point:
    text = line.decode("utf-8")
    if "\n" in text or "\r" in text:
        raise ValueError("raw newline in line")
    parts = _split(text, " ")
    if len(parts) != 3:
        raise ValueError(f"expected 3 space-separated sections, got {len(parts)}: {text[:120]}")
    series, field_set, ts = parts
    key_parts = _split(series, ",")
    measurement = _unescape(key_parts[0])
    if not measurement:
        raise ValueError("empty measurement")
    tags: dict[str, str] = {}
    for tag in key_parts[1:]:
        kv = _split(tag, "=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise ValueError(f"bad tag {tag!r}")
        tags[_unescape(kv[0])] = _unescape(kv[1])
    if list(tags) != sorted(tags):
        raise ValueError(f"tags not sorted: {list(tags)}")
    fields: dict[str, float | bool] = {}
    for item in _split(field_set, ","):
        kv = _split(item, "=")
        if len(kv) != 2 or not kv[0]:
            raise ValueError(f"bad field {item!r}")
        key, raw = _unescape(kv[0]), kv[1]
        if key == "time":
            raise ValueError("field named time")
        if raw in ("true", "false"):
            fields[key] = raw == "true"
        elif _FLOAT.fullmatch(raw):
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(f"non-finite field {key}={raw}")
            fields[key] = value
        else:
            raise ValueError(f"field {key} value {raw!r} is not a float or boolean")
    if not fields:
        raise ValueError("no fields")
    if not ts.isdigit():
        raise ValueError(f"bad timestamp {ts!r}")
    return Point(measurement, tags, fields, int(ts))
