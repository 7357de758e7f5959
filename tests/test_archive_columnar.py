"""The compiled MessagePack -> Arrow decoder against the reference path (msgpack + pyarrow).

InfluxDB's chunked answers are built here with ``msgpack`` (as InfluxDB encodes
them: float64 for floats, the smallest int encoding, str for strings), cut into
reads at awkward places, and decoded both ways: every batch must be equal, value
for value, nulls and types included; documents the fast path does not take go
the reference way, and errors still come out as the documents InfluxDB sent.
"""

from __future__ import annotations

import random

import msgpack
import pyarrow as pa
import pytest

from edge.archive import columnar
from edge.archive import parquet_schema as schema



def test_the_extension_is_built():
    """make venv / pip install -e . compile it; without it the export decodes
    with msgpack, at a fraction of the speed (the tests below then fail too)."""
    assert columnar.PATH == "msgcols", "edge.archive.msgcols is not built: run `make venv` (needs gcc and Python headers)"

FIELDS = {"f": pa.float64(), "i": pa.int64(), "b": pa.bool_(), "s": pa.string()}
TAGS = ["device", "site_id"]
COLUMNS = ["time", "b", "device", "f", "i", "s", "site_id"]


def _rows(n: int, seed: int) -> list[list]:
    rnd = random.Random(seed)
    ints = [0, 1, -1, 127, 128, -32, -33, 255, 256, -129, 65_535, 65_536, -32_769, 2**31, -(2**31) - 1,
            2**32, 2**63 - 1, -(2**63)]
    texts = ["", "a", "Rack A, Bay=1 / West", "é€😀", "x" * 40, "y" * 300, "z" * 70_000]
    rows = []
    for r in range(n):
        rows.append([
            1_688_169_600_000_000_000 + r * 1_000_000_000 + rnd.choice([0, 7_000]),
            rnd.choice([None, True, False]),
            rnd.choice([None, "EV Charger 1", "é"]),
            rnd.choice([None, 0.0, -0.0, 1.5, 1e308, -2.5e-308, float("inf"), 3.0, 1 / 3]),
            rnd.choice([None] + ints),
            rnd.choice([None] + texts),
            "000001",
        ])
    return rows


def _doc(columns, rows, **extra) -> bytes:
    series = {"name": "m", "columns": columns, "values": rows, "partial": True}
    return msgpack.packb({"results": [{"statement_id": 0, "series": [series], **extra}]}, use_bin_type=True)


def _reads(data: bytes, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        step = rnd.choice([1, 2, 7, 100, 4096, 65_536])
        out.append(data[at:at + step])
        at += step
    return out


def _batches(stream: list[bytes], use_fast: bool) -> list[pa.RecordBatch]:
    kinds = columnar.kinds(FIELDS, TAGS) if use_fast else {}
    out = []
    for doc in columnar.documents(stream, kinds):
        if isinstance(doc, list):
            for columns, decoded in doc:
                s = schema.arrow_schema(columns, FIELDS, TAGS)
                out.append(columnar.record_batch(columns, decoded, s))
        else:
            for result in doc["results"]:
                for series in result.get("series", []):
                    s = schema.arrow_schema(series["columns"], FIELDS, TAGS)
                    out.append(schema.record_batch(series["columns"], series["values"], s))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_every_value_is_decoded_as_the_reference_path_decodes_it(seed):
    docs = [_doc(COLUMNS, _rows(n, seed * 10 + k)) for k, n in enumerate([1, 300, 0, 17])]
    stream = _reads(b"".join(docs), seed)
    assert all(isinstance(d, list) for d in columnar.documents(stream, columnar.kinds(FIELDS, TAGS)))
    fast, slow = _batches(stream, True), _batches(stream, False)
    assert len(fast) == len(slow) == 4
    for a, b in zip(fast, slow):
        a.validate(full=True)
        assert a.schema == b.schema
        assert a.to_pylist() == b.to_pylist()
        assert a.equals(b)


def test_a_column_the_chunk_lacks_is_null_and_column_order_does_not_matter():
    rows = [[r[0], r[3], r[1]] for r in _rows(50, 1)]
    stream = [_doc(["time", "f", "b"], rows)]
    fast, slow = _batches(stream, True), _batches(stream, False)
    assert fast[0].equals(slow[0])


@pytest.mark.parametrize("value", [2**63, 7, "text", 1.5, True], ids=["uint64", "int", "str", "float", "bool"])
def test_a_value_of_another_type_sends_the_document_the_reference_way(value):
    column = {2**63: "i", 7: "f", "text": "b", 1.5: "s", True: "f"}[value]
    rows = [[1_000, None], [2_000, value]]
    stream = [_doc(["time", column], rows), _doc(["time", "f"], [[3_000, 1.0]])]
    docs = list(columnar.documents(stream, columnar.kinds(FIELDS, TAGS)))
    assert isinstance(docs[0], dict) and docs[0]["results"][0]["series"][0]["values"] == rows
    assert isinstance(docs[1], list)


def test_errors_and_unknown_columns_come_out_as_the_documents_influxdb_sent():
    kinds = columnar.kinds(FIELDS, TAGS)
    error = msgpack.packb({"results": [{"statement_id": 0, "error": "shard is closed"}]})
    unknown = _doc(["time", "nope"], [[1_000, 1.0]])
    docs = list(columnar.documents([error + unknown], kinds))
    assert docs[0]["results"][0]["error"] == "shard is closed"
    assert docs[1]["results"][0]["series"][0]["columns"] == ["time", "nope"]


def test_invalid_utf8_fails_and_a_truncated_answer_fails():
    bad = _doc(["time", "s"], [[1_000, "ok"]]).replace(b"\xa2ok", b"\xa2\xff\xfe")
    for columns, decoded in next(iter(columnar.documents([bad], columnar.kinds(FIELDS, TAGS)))):
        with pytest.raises(pa.ArrowInvalid):
            columnar.record_batch(columns, decoded, schema.arrow_schema(columns, FIELDS, TAGS))
    whole = _doc(COLUMNS, _rows(10, 3))
    with pytest.raises(ValueError, match="ends inside a document"):
        list(columnar.documents([whole[:-3]], columnar.kinds(FIELDS, TAGS)))


def test_a_uint64_field_always_goes_the_reference_way():
    kinds = columnar.kinds({"u": pa.uint64(), "f": pa.float64()}, ["site_id"])
    assert "u" not in kinds and kinds["f"] == columnar.FLOAT and kinds["site_id"] == columnar.SKIP
