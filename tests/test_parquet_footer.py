"""The upload Lambda's pure-Python Parquet footer reader, checked against files pyarrow
writes (the archiver's writer), including the corrupt and the oversized cases."""

from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.upload.parquet_schema import (
    Column,
    NeedMoreBytes,
    ParquetFooterError,
    columns_from_tail,
    footer_length,
)


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", **kwargs)
    return buf.getvalue()


def archive_like_table() -> pa.Table:
    """Shaped like the archive: time (UTC, us), tags as strings, double/boolean fields."""
    return pa.table(
        {
            "time": pa.array([dt.datetime(2024, 5, 1, 12, 0, 0)], pa.timestamp("us", tz="UTC")),
            "site_id": ["000001"],
            "device": ["EV Charger 1/A"],
            "service_id": ["1"],
            "Voltage_L1": [229.5],
            "run": [True],
        }
    )


def test_archive_columns_and_types():
    data = parquet_bytes(archive_like_table())
    assert columns_from_tail(data, len(data)) == [
        Column("time", "timestamp"),
        Column("site_id", "string"),
        Column("device", "string"),
        Column("service_id", "string"),
        Column("Voltage_L1", "double"),
        Column("run", "boolean"),
    ]


@pytest.mark.parametrize(
    ("array", "glue_type"),
    [
        (pa.array([1], pa.timestamp("ms", tz="UTC")), "timestamp"),
        (pa.array([1], pa.timestamp("ms")), "timestamp"),
        (pa.array([1], pa.timestamp("ns", tz="UTC")), "timestamp"),
        (pa.array([1], pa.int8()), "tinyint"),
        (pa.array([1], pa.int16()), "smallint"),
        (pa.array([1], pa.int32()), "int"),
        (pa.array([1], pa.int64()), "bigint"),
        (pa.array([1], pa.uint32()), "bigint"),
        (pa.array([1], pa.uint64()), "decimal(20,0)"),
        (pa.array([1.0], pa.float32()), "float"),
        (pa.array([1.0], pa.float64()), "double"),
        (pa.array([True]), "boolean"),
        (pa.array(["x"]), "string"),
        (pa.array(["x"]).dictionary_encode(), "string"),
        (pa.array([b"x"]), "binary"),
        (pa.array([dt.date(2024, 1, 1)]), "date"),
        (pa.array([1], pa.decimal128(10, 2)), "decimal(10,2)"),
        (pa.array([[1.0, 2.0]]), "array<double>"),
        (pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64())), "map<string,bigint>"),
        (pa.array([{"x": 1, "y": "s"}]), "struct<x:bigint,y:string>"),
    ],
)
def test_type_mapping(array, glue_type):
    data = parquet_bytes(pa.table({"c": array}))
    assert columns_from_tail(data, len(data)) == [Column("c", glue_type)]


def test_legacy_int96_timestamps():
    data = parquet_bytes(
        pa.table({"t": pa.array([1], pa.timestamp("ns"))}), use_deprecated_int96_timestamps=True
    )
    assert columns_from_tail(data, len(data)) == [Column("t", "timestamp")]


def test_short_tail_asks_for_the_footer_size():
    table = pa.table({f"field_{i:04d}": [float(i)] for i in range(600)})
    data = parquet_bytes(table)
    with pytest.raises(NeedMoreBytes) as more:
        columns_from_tail(data[-1024:], len(data))
    assert more.value.size == footer_length(data) + 8
    columns = columns_from_tail(data[-more.value.size :], len(data))
    assert len(columns) == 600 and columns[599] == Column("field_0599", "double")


@pytest.mark.parametrize(
    "data",
    [b"", b"PAR1", b"not a parquet file at all", b"PAR1" + b"\x00" * 20 + b"PARE"],
)
def test_not_parquet(data):
    with pytest.raises(ParquetFooterError):
        columns_from_tail(data, len(data))


def test_footer_length_beyond_file():
    data = parquet_bytes(archive_like_table())
    lying = data[:-8] + (10**6).to_bytes(4, "little") + b"PAR1"
    with pytest.raises(ParquetFooterError):
        columns_from_tail(lying, len(lying))


_SAMPLE = parquet_bytes(archive_like_table())
_FOOTER_START = len(_SAMPLE) - footer_length(_SAMPLE) - 8


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=_FOOTER_START, max_value=len(_SAMPLE) - 9),
    value=st.integers(min_value=0, max_value=255),
)
def test_corrupt_footer_fails_cleanly(position, value):
    """Any corrupted byte in the footer gives columns or ParquetFooterError, never
    another exception (the handler logs and skips the object instead of crashing)."""
    data = bytearray(_SAMPLE)
    data[position] = value
    try:
        columns = columns_from_tail(bytes(data), len(data))
    except ParquetFooterError:
        return
    assert all(isinstance(c, Column) for c in columns)
