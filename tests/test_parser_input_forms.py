"""Input forms a real gateway sends that the parser must read, and messages that
say what is wrong with a timestamp."""

from __future__ import annotations

import orjson
import pytest

from edge.parser import ParseError, parse, to_lines

BOM = b"\xef\xbb\xbf"


def test_a_leading_utf8_byte_order_mark_is_ignored(sample_bytes):
    # RFC 8259 section 8.1: a reader may ignore a BOM; Windows-built gateways send one.
    assert to_lines(BOM + sample_bytes) == to_lines(sample_bytes)
    assert len(to_lines(sample_bytes)) > 0


def test_a_bom_in_front_of_garbage_is_still_refused_clearly():
    with pytest.raises(ParseError, match="invalid JSON"):
        parse(BOM + b"{not json")


def _with_timestamp(sample_bytes: bytes, ts: str) -> bytes:
    doc = orjson.loads(sample_bytes.replace(b"\x08", b" "))
    doc["header"]["timestamp"] = ts
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("ts", "says"),
    [
        ("2026-02-30 10:00:00", "not a real date and time: day is out of range for month"),
        ("2026-13-01 00:00:00", "not a real date and time: month must be in 1..12"),
        ("2026-01-01 25:00:00", "not a real date and time: hour must be in 0..23"),
        ("yesterday", "not 'YYYY-MM-DD HH:MM:SS'"),
    ],
)
def test_a_timestamp_error_says_whether_the_format_or_the_date_is_wrong(sample_bytes, ts, says):
    with pytest.raises(ParseError) as caught:
        parse(_with_timestamp(sample_bytes, ts))
    assert says in str(caught.value)
    assert caught.value.reason == "parse_error"
