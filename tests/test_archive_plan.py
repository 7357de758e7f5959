"""The archive's pure core: windows, layout, InfluxQL text, next-step decisions, types."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from edge.archive import plan
from edge.archive import parquet_schema as schema


def test_window_is_one_utc_day_in_hive_layout():
    w = plan.Window("field6", date(2023, 7, 1), "000001")
    assert w.start_ns == 1688169600 * 10**9
    assert w.end_ns - w.start_ns == 86_400 * 10**9
    assert w.part_key(0) == "field6/site_id=000001/date=2023-07-01/part-00000.parquet"
    assert w.manifest_key == "field6/site_id=000001/date=2023-07-01/_manifest.json"
    odd = plan.Window("m", date(2023, 7, 1), "a/b=c")
    assert odd.directory == "m/site_id=a%2Fb%3Dc/date=2023-07-01"
    assert plan.Window("m", date(2023, 7, 1), "").directory.endswith("site_id=__HIVE_DEFAULT_PARTITION__/date=2023-07-01")


def test_range_covers_whole_days_only():
    now = datetime(2023, 8, 10, 15, 30, tzinfo=UTC)
    start, end = plan.archive_range(now, 30, None, None)
    assert start is None and end == plan.day_start_ns(date(2023, 7, 11))
    assert plan.archive_range(now, 0, None, None) == (None, plan.day_start_ns(date(2023, 8, 11)))
    start, end = plan.archive_range(now, 0, datetime(2023, 7, 1, 12, tzinfo=UTC), datetime(2023, 7, 3, 6, tzinfo=UTC))
    assert (start, end) == (plan.day_start_ns(date(2023, 7, 1)), plan.day_start_ns(date(2023, 7, 3)))


def test_delete_statement_is_bounded_and_quoted():
    w = plan.Window('we"ird', date(2023, 7, 1), "o'neil")
    sql = plan.delete_window(w)
    assert sql == (
        'DELETE FROM "we\\"ird" WHERE "site_id" = \'o\\\'neil\''
        f" AND time >= {w.start_ns} AND time < {w.end_ns}"
    )


def _part(index, counts, sealed=False, deleted=False):
    return {"index": index, "field_counts": counts, "sealed": sealed, "deleted": deleted}


@pytest.mark.parametrize(
    ("parts", "counts", "stored_ok", "delete", "expected"),
    [
        ([], {"v": 3}, False, True, (plan.Step.EXPORT, 0)),
        ([], {}, False, True, (plan.Step.NOTHING, 0)),
        ([_part(0, {"v": 3})], {"v": 3}, True, True, (plan.Step.DELETE_ONLY, 0)),
        ([_part(0, {"v": 3})], {"v": 3}, True, False, (plan.Step.SKIP, 0)),
        # Object missing or corrupt in the store: export again into the same part.
        ([_part(0, {"v": 3})], {"v": 3}, False, True, (plan.Step.EXPORT, 0)),
        # More points since (kept in InfluxDB): re-export replaces the open part.
        ([_part(0, {"v": 3})], {"v": 5}, True, False, (plan.Step.EXPORT, 0)),
        # Killed after sealing, before DELETE: delete, no new upload.
        ([_part(0, {"v": 3}, sealed=True)], {"v": 3}, True, True, (plan.Step.DELETE_ONLY, 0)),
        # Deleted day with late points: a new part, the archived one stays.
        ([_part(0, {"v": 3}, sealed=True, deleted=True)], {"v": 3}, True, True, (plan.Step.EXPORT, 1)),
        ([_part(0, {"v": 3}, sealed=True, deleted=True)], {"v": 1}, True, True, (plan.Step.EXPORT, 1)),
    ],
)
def test_decide(parts, counts, stored_ok, delete, expected):
    manifest = {"parts": parts} if parts else None
    d = plan.decide(manifest, counts, stored_ok, delete)
    assert (d.step, d.part_index) == expected


def test_field_types_and_schema():
    types = schema.field_types([("v", "float"), ("run", "boolean"), ("n", "integer"), ("n", "float"), ("s", "string"), ("x", "float"), ("x", "string")])
    assert types == {"v": pa.float64(), "run": pa.bool_(), "n": pa.float64(), "s": pa.string(), "x": pa.string()}
    s = schema.arrow_schema(["time", "run", "device", "site_id", "v"], types, ["device", "site_id"])
    assert s.names == ["time", "device", "run", "v"]
    assert s.field("time").type == pa.timestamp("us", tz="UTC")


def test_sub_microsecond_time_is_refused_not_truncated():
    s = schema.arrow_schema(["time", "v"], {"v": pa.float64()}, [])
    batch = schema.record_batch(["time", "v"], [[1_000, 1.0], [2_000, None]], s)
    assert batch.column(0).to_pylist()[1].microsecond == 2
    with pytest.raises(schema.SchemaError):
        schema.record_batch(["time", "v"], [[1_001, 1.0]], s)
