"""edge.core.lineproto: the one reader and writer of InfluxDB line protocol. Pure
checks here; InfluxDB itself judges the writing in tests/test_parser_influxdb.py."""

from __future__ import annotations

import pytest

from edge.core import lineproto


def test_read_honours_escapes_and_quotes():
    line = r'my\ meas,device=PV\ Equipment,k=a\=b f\ 1=1.5,b=true,i=3i,u=4u,s="x, y=z \"q\" \\" 1'
    read = lineproto.read(line)
    assert read.measurement == "my meas"
    assert read.tags == {"device": "PV Equipment", "k": "a=b"}
    assert {k: lineproto.value_type(v) for k, v in read.fields.items()} == {
        "f 1": "float", "b": "boolean", "i": "integer", "u": "unsigned", "s": "string"}
    assert lineproto.value(read.fields["s"]) == 'x, y=z "q" \\'
    assert lineproto.value(read.fields["i"]) == 3 and lineproto.value(read.fields["b"]) is True
    assert read.timestamp == 1


def test_a_backslash_right_before_a_separator_escapes_it_in_the_series_as_influxdb_reads_it():
    # Tag key "\ _index" (a JSON key backslash-space) is written \\ _index: InfluxDB's
    # scanner takes the space as escaped because a backslash stands right before it.
    line = rb"m,\\ _index=1,site_id=a\\\,b v=1 5"
    assert lineproto.series_key(line) == rb"m,\\ _index=1,site_id=a\\\,b"
    read = lineproto.read(line)
    assert read.tags == {"\\ _index": "1", "site_id": "a\\\\,b"}
    assert lineproto.tag_value(lineproto.series_key(line), b"site_id") == "a\\\\,b"
    assert lineproto.tag_value(b"m,x=1", b"site_id") is None


@pytest.mark.parametrize("name, kind", [
    ("a b,c=d", lineproto.TAG), ("a\\,b", lineproto.TAG), ("\\ ", lineproto.TAG), ("x\\ y", lineproto.TAG),
    ("a b,c", lineproto.MEASUREMENT), ("#m", lineproto.MEASUREMENT), ('a"b', lineproto.FIELD),
    ("time", lineproto.FIELD), ("a\\b", lineproto.FIELD),
])
def test_what_is_written_reads_back_as_the_stored_name(name, kind):
    stored = lineproto.stored_name(name, kind)
    written = lineproto.escape(name, kind).decode()
    if kind == lineproto.MEASUREMENT:
        line = f"{written} v=1 1"
        assert lineproto.read(line).measurement == stored
    elif kind == lineproto.TAG:
        line = f"m,{written}={written} v=1 1"
        assert lineproto.read(line).tags == {stored: stored}
    else:
        line = f"m {written}=1 1"
        assert list(lineproto.read(line).fields) == [stored]


def test_string_values_round_trip():
    for text in ['plain', 'a "quoted" \\ back\\slash\\', "new\nline"]:
        assert lineproto.value(lineproto.string_value(text)) == text


@pytest.mark.parametrize("broken", ["m", "m v 1", 'm s="open 1', "m v=1 x"])
def test_a_broken_line_is_refused(broken):
    with pytest.raises(lineproto.LineError):
        lineproto.read(broken)
