"""The parser's lines, written to the real InfluxDB, read back value for value and
type for type (InfluxDB is the judge of our line protocol and escaping)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from edge.parser import to_lines
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
