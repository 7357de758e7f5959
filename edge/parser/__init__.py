"""Where a reading is parsed: one gateway JSON document -> InfluxDB line protocol.

Pure: no clients, no I/O. The public API (benchmarks, checks and the parse stage
call it): :func:`parse`, :func:`to_lines`, :class:`ParseError`, :class:`ParseResult`,
:class:`TimeZones` and :func:`received_at_ns`. The parts live in ``edge.parser``:

- decoding (``edge.parser.decode``): orjson, with the gateway's raw control
  characters inside strings, NaN/Infinity and out-of-range numbers handled;
- the data model (``edge.parser.points``): one point per service element, lists
  and deeper objects flattened, objects in lists points of their own, duplicate
  series within a message kept once and reported;
- names (``edge.core.lineproto``): what InfluxDB stores for each name;
- time (``edge.parser.times``): ``header.timestamp`` in the site's zone,
  daylight-saving fall-back resolved by the receive time, the spring-forward gap a
  ParseError with reason ``nonexistent_local_time``;
- the compiled hot path (``edge.parser.onepass``, Cython, built by ``pip install``
  when a compiler is there): the common document shape from bytes straight to the
  same lines; anything else it hands to the pure parser above, which stays the
  reference. :data:`PATH` says which runs; a fallback's reason is on the result
  (``ParseResult.fallback``, ``ParseError.fallback``) for the stage to count.

Tags are written sorted by key, so the line's series key is InfluxDB's own and can
be used as the Kafka key (one series -> one partition). A message with no usable
timestamp or FieldDeviceLayer raises ``ParseError`` (never a point at time 0).
"""

from __future__ import annotations

from edge.core import lineproto
from edge.parser.decode import decode
from edge.parser.errors import ParseError, ParseResult
from edge.parser.points import LayerWalk, json_type
from edge.parser.times import (
    EARLIER_OCCURRENCE,
    RESOLVED_BY_HINT,
    UTC_ONLY,
    TimeZones,
    received_at_ns,
    timestamp_ns,
)

try:
    from edge.parser import onepass as _onepass
except ImportError:  # not built (no compiler at install time): the pure parser runs
    _onepass = None

__all__ = ["PATH", "ParseError", "ParseResult", "TimeZones", "parse", "parse_pure", "received_at_ns", "to_lines"]

#: Which parser runs: ``onepass`` (compiled, falling back to the pure parser for
#: documents it does not handle) or ``pure`` (the extension is not built).
PATH = "pure" if _onepass is None else "onepass"


def to_lines(raw: bytes) -> list[bytes]:
    """Line-protocol lines (no trailing newline) for one message, time zone UTC."""
    return parse(raw).lines


def parse(raw: bytes, zones: TimeZones = UTC_ONLY, received_at_ns: int | None = None) -> ParseResult:
    """All points of one message; raises ParseError when none can be made.

    ``received_at_ns`` (see :func:`received_at_ns`) tells the two occurrences of a
    repeated local hour apart; without it the earlier one is used (and counted).
    """
    if _onepass is None:
        return parse_pure(raw, zones, received_at_ns)
    found = _onepass.parse(raw, zones, received_at_ns)
    if found.__class__ is not str:
        return found
    try:
        result = parse_pure(raw, zones, received_at_ns)
    except ParseError as exc:
        exc.fallback = found
        raise
    result.fallback = found
    return result


def parse_pure(raw: bytes, zones: TimeZones = UTC_ONLY, received_at_ns: int | None = None) -> ParseResult:
    """:func:`parse` in pure Python: the reference, and the fallback."""
    doc = decode(raw)
    if doc.__class__ is not dict:
        raise ParseError(f"top level is {json_type(doc)}, expected an object")
    header = doc.get("header")
    if header.__class__ is not dict:
        raise ParseError(f"header missing or not an object (got {json_type(header)})")
    site = _site_id(header.get("site_id"))
    ts_ns, outcome = timestamp_ns(header.get("timestamp"), zones.for_site(site), received_at_ns)
    layer = doc.get("FieldDeviceLayer")
    if layer.__class__ is not dict:
        raise ParseError(f"FieldDeviceLayer missing or not an object (got {json_type(layer)})")
    site_tag = lineproto.tag(site)
    if site_tag is None:
        raise ParseError(f"header.site_id {site!r:.60} cannot be stored as an InfluxDB tag")

    result = ParseResult(points=[])
    if outcome == RESOLVED_BY_HINT:
        result.ambiguous_times_resolved = 1
    elif outcome == EARLIER_OCCURRENCE:
        result.ambiguous_times_unresolved = 1
    LayerWalk(result, site_tag, b" " + str(ts_ns).encode(), raw).layer(layer)
    if not result.points:
        detail = "; ".join(result.problems[:5]) or "no numeric or boolean readings"
        raise ParseError(f"no usable readings: {detail}")
    return result


def _site_id(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ParseError(f"header.site_id missing or not a non-empty string: {value!r:.60}")
