"""Differential property test with the real InfluxDB as the oracle.

Hypothesis generates gateway documents (deep nesting, lists, odd and unicode keys,
huge and tiny numbers, duplicate ids); the parser's lines are written to a fresh
InfluxDB database; every point read back must equal what an independent walk of
the JSON says the data model stores: the same series, the same field names, each
value equal and of the same type (float or boolean), and nothing more. The walk
below is written from the data model in the README, not from edge.parser.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.parser import ParseError, parse
from tests.test_parser_influxdb import stored_points, write

# ---------------------------------------------------------------- the independent walk

_SPECIAL_AFTER_BACKSLASH = {"measurement": ', ="', "tag": " ", "field": ", ="}
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f", "\x00": "\\0"}


def stored_name(name: str, kind: str) -> str | None:
    """The README's name rules, character by character."""
    name = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in name)
    kept, i = [], 0
    while i < len(name):
        if name[i] != "\\":
            kept.append(name[i])
            i += 1
            continue
        end = i
        while end < len(name) and name[end] == "\\":
            end += 1
        if end < len(name) and name[end] not in _SPECIAL_AFTER_BACKSLASH[kind]:
            kept.extend(name[i:end])  # otherwise the run of backslashes is dropped
        i = end
    text = "".join(kept)
    if not text:
        return None
    if (kind == "measurement" and text[0] == "#") or (kind == "field" and text == "time"):
        text = "\\" + text
    return "".join(_CONTROL.get(c, c) for c in text)


def identifier(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str) and value.strip():
        try:
            return str(int(value.strip())) if value.strip().isascii() or value.strip().isdecimal() else value
        except ValueError:
            return value
    return None


def reading(value):
    """A JSON number as the float InfluxDB keeps, a boolean as itself, else None
    (NaN, infinity and overflow: refused, i.e. named in a problem)."""
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class Expected:
    """series -> fields the data model stores, and whether anything was refused."""

    def __init__(self, doc: dict):
        self.points: dict[tuple, dict] = {}
        self.paths: dict[tuple, dict] = {}  # series -> field -> JSON path (for the type fix-up)
        self.refused = False
        site = stored_name(doc["header"]["site_id"], "tag")
        for field_key, device in doc["FieldDeviceLayer"].items():
            measurement = stored_name(field_key, "measurement")
            name = device.get("Name")
            device_tag = stored_name(name, "tag") if isinstance(name, str) else None
            for position, element in enumerate(device["service"], 1):
                at = ("FieldDeviceLayer", field_key, "service", position - 1)
                if measurement is None:
                    self.refused |= _has_readings(element)
                    continue
                id_key = "id" if "id" in element else ("index" if "index" in element else None)
                service_id = identifier(element[id_key]) if id_key else None
                service_tag = stored_name(service_id, "tag") if service_id is not None else None
                if service_tag is None:
                    service_tag, id_key = str(position), None
                tags = {"site_id": site, "service_id": service_tag}
                if device_tag:
                    tags["device"] = device_tag
                self.point(element, id_key, field_key, None, tags, at, objects_are_points=True)

    def point(self, obj, skip, base, path, tags, at, objects_are_points):
        direct, flattened = {}, []  # name -> (value, path); [(name, value, path)]
        for key, value in obj.items():
            here = at + (key,)
            if key == skip:
                continue
            if isinstance(value, (bool, int, float)):
                self.field(direct, key, value, here)
            elif isinstance(value, dict) and objects_are_points:
                self.child(base, path, key, value, 1, tags, here)
            elif isinstance(value, dict):
                self.flatten(value, key + "_", flattened, base, path, tags, here)
            elif isinstance(value, list):
                self.flatten_list(value, key, flattened, base, path, tags, here)
        fields = dict(direct)
        for name, value, where in flattened:
            stored = stored_name(name, "field")
            if stored is None or stored in fields or (v := reading(value)) is None:
                self.refused = True
            else:
                fields[stored] = (v, where)
        if not fields:
            return
        series = (stored_name(base if path is None else f"{base}_{path}", "measurement"), frozenset(tags.items()))
        if series in self.points:
            self.refused = True  # duplicate series: the first is written
            return
        self.points[series] = {name: v for name, (v, _) in fields.items()}
        self.paths[series] = {name: where for name, (_, where) in fields.items()}

    def field(self, direct, key, value, where):
        stored = stored_name(key, "field")
        if stored is None or stored in direct or (v := reading(value)) is None:
            self.refused = True
        else:
            direct[stored] = (v, where)

    def flatten(self, obj, prefix, flattened, base, path, tags, at):
        for key, value in obj.items():
            if isinstance(value, (bool, int, float)):
                flattened.append((prefix + key, value, at + (key,)))
            elif isinstance(value, dict):
                self.flatten(value, f"{prefix}{key}_", flattened, base, path, tags, at + (key,))
            elif isinstance(value, list):
                self.flatten_list(value, prefix + key, flattened, base, path, tags, at + (key,))

    def flatten_list(self, items, name, flattened, base, path, tags, at):
        for i, item in enumerate(items):
            if isinstance(item, (bool, int, float)):
                flattened.append((f"{name}_{i}", item, at + (i,)))
            elif isinstance(item, dict):
                self.child(base, path, name, item, i + 1, tags, at + (i,))
            elif isinstance(item, list):
                self.flatten_list(item, f"{name}_{i}", flattened, base, path, tags, at + (i,))

    def child(self, base, parent_path, name, item, position, tags, at):
        path = name if parent_path is None else f"{parent_path}_{name}"
        own = identifier(item.get("index"))
        own_tag = stored_name(own, "tag") if own is not None else None
        skip = "index" if own_tag is not None else None
        child_tags = dict(tags, **{stored_name(path + "_index", "tag"): own_tag or str(position)})
        self.point(item, skip, base, path, child_tags, at, objects_are_points=False)


def _has_readings(value) -> bool:
    if isinstance(value, dict):
        return any(_has_readings(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_readings(v) for v in value)
    return isinstance(value, (bool, int, float))


def one_type_per_field(doc: dict) -> dict:
    """InfluxDB keeps one type per field of a measurement: where the generated
    document gives a field both booleans and numbers, the later readings are turned
    into the first one's type (a real gateway never does this; InfluxDB would
    refuse those points, which the sink dead-letters)."""
    expected = Expected(doc)
    kinds: dict[tuple, type] = {}
    for (measurement, _), fields in expected.points.items():
        for name, value in fields.items():
            kinds.setdefault((measurement, name), type(value))
    for (measurement, tags), fields in expected.points.items():
        for name, value in fields.items():
            if type(value) is not kinds[(measurement, name)]:
                where = expected.paths[(measurement, tags)][name]
                _set(doc, where, bool(value) if kinds[(measurement, name)] is bool else float(value))
    return doc


def _set(doc, path, value):
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


# ---------------------------------------------------------------- documents

ODD_CHARACTERS = list("abAB01_ ,=\"\\#.-é☀\x00\t\n") + ["𝄞", "\ud800"]
odd_names = st.one_of(
    st.text(alphabet=st.sampled_from(ODD_CHARACTERS), min_size=0, max_size=6),
    st.sampled_from(["time", "index", "id", "#x", "a\\", "soc", "v_0", "x", "_field", "ü n,i=c\"o\\de"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 5e-324, 1.7976931348623157e308, 10**400, -(10**400), 2**53 + 1, 2**64]),
)
leaves = st.one_of(numbers, st.booleans(), st.text(max_size=3), st.none())
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.one_of(numbers, st.booleans()), min_size=8, max_size=12),  # a BMS's cell voltages
        st.dictionaries(odd_names, inner, max_size=4),
        st.lists(st.dictionaries(odd_names, inner, max_size=3), min_size=1, max_size=3),
    ),
    max_leaves=20,
)
ids = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["1", "01", " 2 ", "A 7", "", "²", "٣", "x\\", 1.0, 2.5, True, None]),
)


@st.composite
def elements(draw):
    element = draw(st.dictionaries(odd_names, values, max_size=5))
    if draw(st.booleans()):
        element[draw(st.sampled_from(["id", "index"]))] = draw(ids)
    return element


@st.composite
def documents(draw):
    layer = {}
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.one_of(st.sampled_from(["field1", "field2", "field1_racks"]), odd_names))
        layer[key] = {"service": draw(st.lists(elements(), min_size=1, max_size=3))}
        if draw(st.booleans()):
            layer[key]["Name"] = draw(odd_names)
    site = draw(st.sampled_from(["000001", "site 7", "a,b=c", "ü☀", "#s", "s\\", "0"]))
    doc = {"header": {"site_id": site, "timestamp": "2023-06-09 20:34:06"}, "FieldDeviceLayer": layer}
    return json.dumps(one_type_per_field(doc), allow_nan=True).encode()


# ---------------------------------------------------------------- InfluxDB


def _execute(base: str, q: str) -> None:
    data = urllib.parse.urlencode({"q": q}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/query", data=data), timeout=30) as resp:
        resp.read()


@pytest.fixture(scope="module")
def influx_base(local_services):
    return local_services["influxdb"].url


def _same(stored: dict, expected: dict) -> None:
    assert stored.keys() == expected.keys(), (sorted(stored), sorted(expected))
    for series, fields in expected.items():
        got = stored[series]
        assert got.keys() == fields.keys(), (series, sorted(got), sorted(fields))
        for name, value in fields.items():
            if isinstance(value, bool):
                assert got[name] is value, (series, name, got[name], value)
            else:
                assert not isinstance(got[name], bool) and float(got[name]) == value, (series, name, got[name], value)


DIFFERENTIAL = settings(max_examples=1000, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@DIFFERENTIAL
@given(raw=documents())
def test_every_reading_influxdb_stores_equals_the_json_walk(influx_base, raw):
    doc = json.loads(raw)
    expected = Expected(doc)
    try:
        result = parse(raw)
    except ParseError:
        assert not expected.points, "the parser refused a document with storable readings"
        return
    assert bool(result.problems) == expected.refused, result.problems
    db = f"tdiff{uuid.uuid4().hex[:12]}"
    _execute(influx_base, f'CREATE DATABASE "{db}"')
    try:
        write(influx_base, db, result.lines)
        stored = stored_points(influx_base, db)
    finally:
        _execute(influx_base, f'DROP DATABASE "{db}"')
    assert {time for _, time in stored.values()} == {1_686_342_846 * 10**9}
    _same({series: fields for series, (fields, _) in stored.items()}, expected.points)
