"""edge.parser against sample.json (hand-written and independently walked
expectations) and against a corpus of bad inputs."""

from __future__ import annotations

import json
import math

import pytest

from edge.parser import ParseError, TimeZones, parse, to_lines
from tests.support.lineproto import read_line

# 2023-06-09 20:34:06 UTC, worked out by hand: 19517 days * 86400 + 20:34:06.
SAMPLE_TIME_NS = (19517 * 86_400 + 20 * 3600 + 34 * 60 + 6) * 1_000_000_000


def points_of(raw: bytes, **kw):
    return [read_line(line) for line in parse(raw, **kw).lines]


def by_series(points):
    return {(p.measurement, tuple(sorted(p.tags.items()))): p for p in points}


def expected_from_json(doc: dict) -> dict:
    """Walk the JSON independently of the parser: series -> fields."""
    site = doc["header"]["site_id"]
    expected = {}
    for field_key, device in doc["FieldDeviceLayer"].items():
        for element in device["service"]:
            ident = element["id"] if "id" in element else element["index"]
            tags = {"site_id": site, "device": device["Name"], "service_id": str(int(ident))}
            fields = {}
            for key, value in element.items():
                if key in ("id", "index"):
                    continue
                if isinstance(value, bool):
                    fields[key] = value
                elif isinstance(value, (int, float)):
                    fields[key] = float(value)
                elif isinstance(value, dict):
                    nested_tags = dict(tags, **{f"{key}_index": str(value["index"])})
                    nested = {
                        k: (v if isinstance(v, bool) else float(v))
                        for k, v in value.items()
                        if k != "index" and isinstance(v, (int, float))
                    }
                    expected[(f"{field_key}_{key}", tuple(sorted(nested_tags.items())))] = nested
            expected[(field_key, tuple(sorted(tags.items())))] = fields
    return expected


def numeric_and_boolean_leaves(value) -> int:
    if isinstance(value, dict):
        return sum(numeric_and_boolean_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(numeric_and_boolean_leaves(v) for v in value)
    return int(isinstance(value, (int, float)))


@pytest.fixture(scope="module")
def sample_doc(sample_bytes):
    return json.loads(sample_bytes, strict=False)


def test_sample_gives_17_points_14_services_and_3_racks(sample_bytes):
    points = points_of(sample_bytes)
    assert len(points) == 17
    measurements = [p.measurement for p in points]
    assert measurements.count("field1_racks") == 3
    assert len([m for m in measurements if not m.endswith("_racks")]) == 14
    assert sorted(set(measurements)) == [
        "field1", "field1_racks", "field2", "field3", "field4", "field5", "field6"
    ]


def test_sample_values_written_by_hand(sample_bytes):
    points = by_series(points_of(sample_bytes))
    battery1 = points[("field1", (("device", "Battery"), ("service_id", "1"), ("site_id", "000001")))]
    assert battery1.fields["soc"] == 31.5
    assert battery1.fields["dc_voltage"] == 733.4
    assert battery1.fields["total_racks"] == 1.0 and isinstance(battery1.fields["total_racks"], float)
    assert battery1.fields["run"] is True
    assert battery1.fields["fault"] is False
    assert "id" not in battery1.fields
    rack = points[
        ("field1_racks", (("device", "Battery"), ("racks_index", "1"), ("service_id", "1"), ("site_id", "000001")))
    ]
    assert rack.fields["dc_current"] == 13.3
    assert rack.fields["discharge"] is True
    assert "index" not in rack.fields
    pv = points[("field5", (("device", "PhotoVolatic Equipment"), ("service_id", "1"), ("site_id", "000001")))]
    assert pv.fields["CumulativePowerGeneration"] == 208354.98
    assert all(p.time_ns == SAMPLE_TIME_NS for p in points.values())


def test_service_id_01_becomes_1_and_device_name_is_escaped(sample_bytes):
    lines = to_lines(sample_bytes)
    assert any(line.startswith(b"field1,device=Battery,service_id=1,site_id=000001 ") for line in lines)
    assert any(line.startswith(b"field5,device=PhotoVolatic\\ Equipment,service_id=1,site_id=000001 ") for line in lines)
    assert any(line.startswith(b"field2,device=DC/DC_Convertor,service_id=3,") for line in lines)
    assert all(not line.endswith(b"\n") for line in lines)


def test_every_numeric_and_boolean_reading_is_present_with_its_type(sample_bytes, sample_doc):
    got = {key: p.fields for key, p in by_series(points_of(sample_bytes)).items()}
    expected = expected_from_json(sample_doc)
    assert got.keys() == expected.keys()
    for key, fields in expected.items():
        assert got[key] == fields, key
        for name, value in fields.items():
            assert type(got[key][name]) is type(value), (key, name)
    # Nothing numeric or boolean of a service is dropped: every leaf is a field or
    # an index tag (service_id, racks_index).
    services = [d["service"] for d in sample_doc["FieldDeviceLayer"].values()]
    index_tags = sum(1 for s in services for e in s if "index" in e) + 3  # + the racks' own index
    total_fields = sum(len(f) for f in got.values())
    assert total_fields + index_tags == numeric_and_boolean_leaves(services) == 360 + 14
    # Outside the service lists, numbers are metadata: each device's index (its
    # number in "fieldN"), the header's layer counts, and "etc".
    devices = sample_doc["FieldDeviceLayer"].values()
    assert [d["index"] for d in devices] == [1, 2, 3, 4, 5, 6]


def test_time_zone_per_site_shifts_the_time(sample_bytes):
    seoul = TimeZones.from_names("UTC", {"000001": "Asia/Seoul"})
    shifted = points_of(sample_bytes, zones=seoul)
    assert {p.time_ns for p in shifted} == {SAMPLE_TIME_NS - 9 * 3600 * 1_000_000_000}
    other_site = TimeZones.from_names("UTC", {"000002": "Asia/Seoul"})
    assert {p.time_ns for p in points_of(sample_bytes, zones=other_site)} == {SAMPLE_TIME_NS}
    default_zone = TimeZones.from_names("Europe/Berlin")  # CEST, +02:00 in June
    assert {p.time_ns for p in points_of(sample_bytes, zones=default_zone)} == {
        SAMPLE_TIME_NS - 2 * 3600 * 1_000_000_000
    }


def test_unknown_time_zone_is_a_configuration_error():
    with pytest.raises(ValueError, match="unknown time zone"):
        TimeZones.from_names("Mars/Olympus_Mons")


def test_series_key_is_the_line_prefix(sample_bytes):
    for key, line in parse(sample_bytes).points:
        assert line.startswith(key + b" ")


# ---------------------------------------------------------------- bad input


def _doc(sample_bytes) -> dict:
    return json.loads(sample_bytes, strict=False)


def _with(sample_bytes, mutate) -> bytes:
    doc = _doc(sample_bytes)
    mutate(doc)
    return json.dumps(doc).encode()


BAD_INPUTS = {
    "empty": lambda s: b"",
    "not json": lambda s: b"hello, grid",
    "truncated": lambda s: s[: len(s) // 2],
    "array": lambda s: b"[1, 2, 3]",
    "string": lambda s: b'"FieldDeviceLayer"',
    "null": lambda s: b"null",
    "number": lambda s: b"42",
    "missing header": lambda s: _with(s, lambda d: d.pop("header")),
    "header not an object": lambda s: _with(s, lambda d: d.__setitem__("header", [1])),
    "missing timestamp": lambda s: _with(s, lambda d: d["header"].pop("timestamp")),
    "missing site_id": lambda s: _with(s, lambda d: d["header"].pop("site_id")),
    "empty site_id": lambda s: _with(s, lambda d: d["header"].__setitem__("site_id", " ")),
    "timestamp not a string": lambda s: _with(s, lambda d: d["header"].__setitem__("timestamp", 1686342846)),
    "bad timestamp": lambda s: _with(s, lambda d: d["header"].__setitem__("timestamp", "yesterday")),
    "impossible timestamp": lambda s: _with(s, lambda d: d["header"].__setitem__("timestamp", "2023-13-45 99:99:99")),
    "timestamp at epoch": lambda s: _with(s, lambda d: d["header"].__setitem__("timestamp", "1970-01-01 00:00:00")),
    "timestamp before epoch": lambda s: _with(s, lambda d: d["header"].__setitem__("timestamp", "1969-12-31 23:59:59")),
    "missing FieldDeviceLayer": lambda s: _with(s, lambda d: d.pop("FieldDeviceLayer")),
    "FieldDeviceLayer a list": lambda s: _with(s, lambda d: d.__setitem__("FieldDeviceLayer", [1, 2])),
    "FieldDeviceLayer a string": lambda s: _with(s, lambda d: d.__setitem__("FieldDeviceLayer", "x")),
    "FieldDeviceLayer null": lambda s: _with(s, lambda d: d.__setitem__("FieldDeviceLayer", None)),
    "FieldDeviceLayer empty": lambda s: _with(s, lambda d: d.__setitem__("FieldDeviceLayer", {})),
    "services not lists": lambda s: _with(
        s, lambda d: [f.__setitem__("service", 7) for f in d["FieldDeviceLayer"].values()]
    ),
    "only strings": lambda s: _with(
        s, lambda d: d.__setitem__("FieldDeviceLayer", {"field1": {"Name": "x", "service": [{"id": "01", "a": "b"}]}})
    ),
    "non-UTF-8 bytes": lambda s: s.replace(b"Battery", b"Batt\xff\xfery"),
    "latin-1 encoded": lambda s: "{\"header\": {\"site_id\": \"é\"}}".encode("latin-1"),
    "200,000 nested brackets": lambda s: b"[" * 200_000,
    "200,000 nested objects": lambda s: b'{"a":' * 200_000,
    "nested brackets closed": lambda s: b"[" * 200_000 + b"]" * 200_000,
    "10 MB of garbage": lambda s: b'{"header": "' + b"x" * 10_000_000,
    "10 MB string value": lambda s: b'{"header": "' + b"x" * 10_000_000 + b'"}',
    "NaN everywhere": lambda s: json.dumps(
        {
            "header": {"site_id": "1", "timestamp": "2023-06-09 20:34:06"},
            "FieldDeviceLayer": {"field1": {"Name": "x", "service": [{"id": "01", "a": float("nan"), "b": float("inf")}]}},
        }
    ).encode(),
    "overflowing numbers only": lambda s: (
        b'{"header": {"site_id": "1", "timestamp": "2023-06-09 20:34:06"}, '
        b'"FieldDeviceLayer": {"field1": {"Name": "x", "service": [{"id": 1, "a": 1e400, "b": -1e999, "c": '
        + b"9" * 400
        + b"}]}}}"
    ),
    "bytes of the wrong type": lambda s: "a str, not bytes",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_parse_error_with_a_reason(name, sample_bytes):
    raw = BAD_INPUTS[name](sample_bytes)
    with pytest.raises(ParseError) as caught:
        to_lines(raw)
    assert str(caught.value), "the error must say what was wrong"


def test_parse_error_messages_name_the_problem(sample_bytes):
    cases = {
        "missing timestamp": "header.timestamp",
        "missing FieldDeviceLayer": "FieldDeviceLayer",
        "non-UTF-8 bytes": "UTF-8",
        "200,000 nested brackets": "invalid JSON",
        "truncated": "invalid JSON",
        "timestamp at epoch": "out of range",
    }
    for name, fragment in cases.items():
        with pytest.raises(ParseError, match=fragment):
            to_lines(BAD_INPUTS[name](sample_bytes))


def test_nan_and_infinity_are_dropped_and_counted(sample_bytes):
    raw = sample_bytes.replace(b'"soc": 31.5', b'"soc": NaN', 1).replace(b'"soh": 100.0', b'"soh": Infinity', 1)
    assert raw != sample_bytes
    result = parse(raw)
    assert result.dropped_values == 2
    points = [read_line(line) for line in result.lines]
    assert len(points) == 17
    battery1 = by_series(points)[("field1", (("device", "Battery"), ("service_id", "1"), ("site_id", "000001")))]
    assert "soc" not in battery1.fields and "soh" not in battery1.fields
    assert battery1.fields["dc_voltage"] == 733.4
    # Nothing numeric is dropped without a trace: each is a problem (a `partial`
    # dead letter) naming the site, the path and the value as the document wrote it.
    assert result.problems == [
        "FieldDeviceLayer.field1.service[0].soc: not stored: NaN is not a finite number "
        "(site 000001; InfluxDB stores no NaN or infinity)",
        "FieldDeviceLayer.field1.service[0].soh: not stored: Infinity is not a finite number "
        "(site 000001; InfluxDB stores no NaN or infinity)",
    ]


def test_overflowing_numbers_are_dropped_not_fatal(sample_bytes):
    raw = sample_bytes.replace(b'"soc": 31.5', b'"soc": 1e400', 1).replace(
        b'"soh": 100.0', b'"soh": ' + b"9" * 400, 1
    )
    result = parse(raw)
    assert result.dropped_values == 2
    assert len(result.lines) == 17
    assert [p.split(": not stored: ")[1].split(" is not")[0] for p in result.problems] == ["1e400", "9" * 60]


def test_a_point_left_without_fields_is_not_emitted(sample_bytes):
    def strip_field5(doc):
        doc["FieldDeviceLayer"]["field5"]["service"][0] = {"index": 1, "note": "no readings"}

    result = parse(_with(sample_bytes, strip_field5))
    assert len(result.lines) == 16
    assert result.empty_points == 1


def test_partly_unusable_message_emits_the_rest_and_names_the_problem(sample_bytes):
    def break_field3(doc):
        doc["FieldDeviceLayer"]["field3"]["service"] = "offline"
        doc["FieldDeviceLayer"]["field4"]["service"][1] = 5

    result = parse(_with(sample_bytes, break_field3))
    assert len(result.lines) == 17 - 2 - 1
    assert len(result.problems) == 2
    assert any("field3.service" in p for p in result.problems)
    assert any("field4.service[1]" in p for p in result.problems)


def test_unusual_keys_and_values_are_escaped_or_skipped(sample_bytes):
    def odd(doc):
        element = doc["FieldDeviceLayer"]["field2"]["service"][0]
        element["with space"] = 1.5
        element["comma,key"] = 2
        element["eq=key"] = True
        element["time"] = 3.0
        element["nothing"] = None
        element["words"] = "text"
        element["nested_list"] = [1, 2]
        doc["FieldDeviceLayer"]["field2"]["Name"] = 'DC,DC "conv"\nline'

    lines = parse(_with(sample_bytes, odd)).lines
    points = [read_line(line) for line in lines]
    conv = [p for p in points if p.measurement == "field2" and p.tags["service_id"] == "1"][0]
    # Telegraf's convention: a newline cannot stand in a line, it is written as \n.
    assert conv.tags["device"] == 'DC,DC "conv"\\nline'
    assert conv.fields["with space"] == 1.5
    assert conv.fields["comma,key"] == 2.0
    assert conv.fields["eq=key"] is True
    # InfluxDB refuses a field named time: it is stored as \time (edge.core.lineproto).
    assert "time" not in conv.fields and conv.fields["\\time"] == 3.0
    assert conv.fields["nested_list_0"] == 1.0 and conv.fields["nested_list_1"] == 2.0
    assert "nothing" not in conv.fields and "words" not in conv.fields
    assert all(b"\n" not in line for line in lines)


def test_large_valid_message_parses(sample_bytes):
    doc = _doc(sample_bytes)
    services = doc["FieldDeviceLayer"]["field6"]["service"]
    template = services[0]
    doc["FieldDeviceLayer"]["field6"]["service"] = [dict(template, index=i) for i in range(1, 15_001)]
    raw = json.dumps(doc).encode()
    assert len(raw) > 10_000_000
    lines = to_lines(raw)
    assert len(lines) == 17 - 3 + 15_000
    read_line(lines[-1])


def test_string_ids_that_are_not_numbers_are_kept_verbatim(sample_bytes):
    def ids(doc):
        doc["FieldDeviceLayer"]["field1"]["service"][0]["id"] = "A 7"
        del doc["FieldDeviceLayer"]["field2"]["service"][0]["index"]

    points = [read_line(line) for line in to_lines(_with(sample_bytes, ids))]
    battery = [p for p in points if p.measurement == "field1"]
    assert {p.tags["service_id"] for p in battery} == {"A 7", "2", "3"}
    conv = [p for p in points if p.measurement == "field2"]
    assert {p.tags["service_id"] for p in conv} == {"1", "2", "3"}  # position as fallback


def test_no_nan_in_any_line_for_any_float_value(sample_bytes):
    for value in ("NaN", "-Infinity", "1e400", "-0.0", "1e-320", "123456789012345678901234567890"):
        raw = sample_bytes.replace(b'"soc": 31.5', b'"soc": ' + value.encode())
        for line in to_lines(raw):
            point = read_line(line)
            assert all(not (isinstance(v, float) and math.isnan(v)) for v in point.fields.values())


def test_raw_control_characters_inside_strings_keep_their_meaning(sample_bytes):
    from edge.parser.decode import decode as _decode

    # One (the sample), several, more than the spot fixes handle, and one after
    # non-ASCII text (where orjson's character position is not the byte offset).
    many = b'{"a": "' + b"".join(bytes([c]) + b"x" for c in range(1, 32) if c not in (9, 10, 13)) + b'"}'
    assert _decode(many)["a"] == "".join(chr(c) + "x" for c in range(1, 32) if c not in (9, 10, 13))
    assert _decode('{"a": "é\x08ü", "b": "\x01"}'.encode())["a"] == "é\x08ü"
    assert _decode(b'{"a": "tab\there\nnewline"}')["a"] == "tab\there\nnewline"
    assert json.loads(sample_bytes, strict=False) == _decode(sample_bytes)
    assert len(to_lines(sample_bytes.replace(b"PhotoVolatic", b"Photo\x07Volatic"))) == 17
