"""The parser's lines, written to the real InfluxDB, read back value for value and
type for type (InfluxDB is the judge of our line protocol and escaping)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from edge.parser import parse, to_lines
from tests.test_parser import expected_from_json


def _http(url: str, data: bytes | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        return resp.read()


def _query(base: str, db: str, q: str) -> list[dict]:
    body = _http(f"{base}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"}))
    return json.loads(body)["results"][0].get("series", [])


@pytest.fixture
def influx_db(local_services, names):
    base = local_services["influxdb"].url
    db = names["database"]
    _http(f"{base}/query", urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode())
    yield base, db
    _http(f"{base}/query", urllib.parse.urlencode({"q": f'DROP DATABASE "{db}"'}).encode())


def test_influxdb_stores_every_reading_with_its_type(influx_db, sample_bytes):
    base, db = influx_db
    raw = sample_bytes.replace(b'"Name": "TR"', b'"Name": "TR, main=1"')
    lines = to_lines(raw)
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/write?db={db}&precision=ns", data=b"\n".join(lines)), timeout=10
    ) as resp:
        assert resp.status == 204

    expected = expected_from_json(json.loads(raw, strict=False))
    stored = {}
    for series in _query(base, db, 'SELECT * FROM /.*/ GROUP BY *'):
        tags = tuple(sorted((k, v) for k, v in series["tags"].items() if v))
        for row in series["values"]:
            record = dict(zip(series["columns"], row))
            assert record.pop("time") == 1686342846 * 10**9
            stored[(series["name"], tags)] = {k: v for k, v in record.items() if v is not None}
    assert stored.keys() == expected.keys()
    for key, fields in expected.items():
        assert stored[key].keys() == fields.keys(), key
        for name, value in fields.items():
            got = stored[key][name]
            if isinstance(value, bool):
                assert got is value, (key, name)
            else:
                assert float(got) == value and not isinstance(got, bool), (key, name)

    field_types = {}
    for series in _query(base, db, "SHOW FIELD KEYS"):
        for name, kind in series["values"]:
            field_types.setdefault(kind, set()).add(name)
    assert set(field_types) == {"float", "boolean"}
    assert {"soc", "dc_voltage", "total_racks"} <= field_types["float"]
    assert {"run", "fault", "communication_error"} <= field_types["boolean"]
    tr = [k for k in stored if k[0] == "field4"]
    assert {dict(k[1])["device"] for k in tr} == {"TR, main=1"}


# ---------------------------------------------------------------- names InfluxDB treats specially
#
# (JSON name, the name InfluxDB stores), per place. Found by writing each to
# InfluxDB 1.6 and reading it back; the rules are in edge/core/lineproto.py.

MEASUREMENT_NAMES = [
    ("#field", "\\#field"),  # else the line is a comment: 204, nothing stored
    ("\x00field", "\\0field"),  # NUL: skipped at the start, and InfluxQL cannot name it
    ("field\\", "field"),  # a trailing backslash would escape the separator
    ("a\\,b", "a,b"),  # InfluxDB unescapes measurements twice: the backslash is lost
    ("a\\ b", "a b"),
    ("a\\=b", "a=b"),
    ('a\\"b', 'a"b'),
    ("a\\b", "a\\b"),
    ("a,b c", "a,b c"),
    (" lead", " lead"),
    ("tab\there", "tab\\there"),  # Telegraf's convention for control characters
    ("time", "time"),
    ("a=b\"c#", "a=b\"c#"),
    ("ünï©ødé ☀", "ünï©ødé ☀"),
]
FIELD_NAMES = [
    ("time", "\\time"),  # refused alone, silently dropped next to other fields
    ("\x00x", "\\0x"),
    ("a\x00b", "a\\0b"),
    ("#x", "#x"),
    ("x\\", "x"),
    ("a\\,b", "a,b"),  # the scanner pairs backslashes in field keys: refused
    ("a\\\\,b", "a,b"),
    ("a\\ b", "a b"),
    ("a\\=b", "a=b"),
    ('a\\"b', 'a\\"b'),
    ('a"b', 'a"b'),
    ("a,b c=d", "a,b c=d"),
    (" lead and trail ", " lead and trail "),
    ("nl\nx", "nl\\nx"),
    ("x\\\n", "x\\\\n"),  # a backslash before a newline is not at the end
    ("a\\b", "a\\b"),
    ("_field", "_field"),
]
TAG_VALUES = [
    ("dev\\", "dev"),
    ("a\\,b", "a\\,b"),  # tag values keep a backslash before an escaped character
    ("a\\ b", "a b"),  # a backslash before a space would join the next line to this one
    ("a\\=b", "a\\=b"),
    ("#dev", "#dev"),
    ("\x00dev", "\\0dev"),
    ("a=b,c d", "a=b,c d"),
    ("time", "time"),
]
# A list of objects under key K gives tag key K_index and measurement <fieldN>_K.
NESTED_KEYS = [
    ("#r", "#r_index", "_#r"),
    ("a\\", "a\\_index", "_a"),
    ("a b,c=d", "a b,c=d_index", "_a b,c=d"),
    ("time", "time_index", "_time"),
    ("\\ ", " _index", "_ "),
]


def _special_names_document() -> tuple[bytes, set]:
    layer, expected = {}, set()
    site = "000001"

    def add(field_key, name, element, measurement, tags, fields):
        layer[field_key] = {"Name": name, "service": [element]}
        expected.add((measurement, frozenset(dict(tags, site_id=site).items()), frozenset(fields)))

    for name, stored in MEASUREMENT_NAMES:
        add(name, "dev", {"id": 1, "v": 1.0}, stored, {"device": "dev", "service_id": "1"}, {"v"})
    for i, (name, stored) in enumerate(FIELD_NAMES):
        add(f"f{i}", "dev", {"id": 1, name: 2.0}, f"f{i}", {"device": "dev", "service_id": "1"}, {stored})
    for i, (name, stored) in enumerate(TAG_VALUES):
        add(f"t{i}", name, {"id": name, "v": 1.0}, f"t{i}", {"device": stored, "service_id": stored}, {"v"})
    for i, (key, tag_key, suffix) in enumerate(NESTED_KEYS):
        add(f"n{i}", "dev", {"id": 1, key: [{"v": 3.0}]}, f"n{i}{suffix}",
            {"device": "dev", "service_id": "1", tag_key: "1"}, {"v"})
    raw = json.dumps({"header": {"site_id": site, "timestamp": "2023-06-09 20:34:06"}, "FieldDeviceLayer": layer})
    return raw.encode(), expected


def stored_points(base: str, db: str) -> dict:
    """(measurement, frozenset(tags)) -> ({field: value}, time) of every point InfluxDB holds."""
    stored = {}
    # One measurement at a time: a SELECT over several measurements gives a field
    # one type across them, and returns null for the values of the other type.
    measurements = [row[0] for series in _query(base, db, "SHOW MEASUREMENTS") for row in series["values"]]
    selects = [f"SELECT * FROM {_identifier(m)} GROUP BY *" for m in measurements]
    for series in (s for q in selects for s in _query(base, db, q)):
        tags = frozenset((k, v) for k, v in series.get("tags", {}).items() if v)
        for row in series["values"]:
            record = dict(zip(series["columns"], row))
            time_ns = record.pop("time")
            key = (series["name"], tags)
            assert key not in stored, f"two points in one series: {key}"
            stored[key] = ({k: v for k, v in record.items() if v is not None}, time_ns)
    return stored


def _identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(base: str, db: str, lines: list[bytes]) -> None:
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/write?db={db}&precision=ns", data=b"\n".join(lines)), timeout=30
    ) as resp:
        assert resp.status == 204


def test_influxdb_stores_every_special_name_as_documented(influx_db):
    base, db = influx_db
    raw, expected = _special_names_document()
    result = parse(raw)
    assert not result.problems
    write(base, db, result.lines)
    stored = {(name, tags, frozenset(fields)) for (name, tags), (fields, _) in stored_points(base, db).items()}
    assert stored == expected


def test_a_backslash_before_a_space_in_a_tag_does_not_join_the_next_line(influx_db):
    # Found by the differential test: the tag key "\ _index" was written \\ _index.
    # InfluxDB reads the tag alone fine, but its line splitter pairs backslashes, took
    # the space for the start of the fields, opened a "string" at the quote in the
    # device name and swallowed the newline: both lines were refused with 400.
    base, db = influx_db
    doc = {"header": {"site_id": "000001", "timestamp": "2023-06-09 20:34:06"},
           "FieldDeviceLayer": {"field1": {"Name": 'ü n,i=c"o\\de',
                                           "service": [{"id": 1, "v": 1.0, "\\ ": [{"w": 2.0}]}]}}}
    result = parse(json.dumps(doc).encode())
    assert not result.problems and len(result.lines) == 2
    write(base, db, sorted(result.lines, reverse=True))  # the line with the tag first, then the quote
    device = 'ü n,i=c"o\\de'
    tags = {"device": device, "service_id": "1", "site_id": "000001"}
    assert {(name, tags, frozenset(fields.items())) for (name, tags, ), (fields, _) in stored_points(base, db).items()} == {
        ("field1", frozenset(tags.items()), frozenset({("v", 1.0)})),
        ("field1_ ", frozenset(dict(tags, **{" _index": "1"}).items()), frozenset({("w", 2.0)})),
    }
