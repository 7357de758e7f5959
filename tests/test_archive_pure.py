"""The archive's pure core: windows, layout, InfluxQL text, next-step decisions, types."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from edge.archive import influxql
from edge.archive import layout
from edge.archive import manifest as manifests
from edge.archive import merge
from edge.archive import retention
from edge.archive import windows
from edge.archive.windows import Window
from edge.archive import parquet_schema as schema
from edge.core.errors import UsageError


def test_window_is_one_utc_day_in_hive_layout():
    w = windows.Window("field6", date(2023, 7, 1), "000001")
    assert w.start_ns == 1688169600 * 10**9
    assert w.end_ns - w.start_ns == 86_400 * 10**9
    assert w.part_key(0) == "field6/site_id=000001/date=2023-07-01/part-00000.parquet"
    assert w.manifest_key == "field6/site_id=000001/date=2023-07-01/_manifest.json"
    odd = windows.Window("m", date(2023, 7, 1), "a/b=c")
    assert odd.directory == "m/site_id=a%2Fb%3Dc/date=2023-07-01"
    assert windows.Window("m", date(2023, 7, 1), "").directory.endswith("site_id=__HIVE_DEFAULT_PARTITION__/date=2023-07-01")


def test_range_covers_whole_complete_days_only():
    now = datetime(2023, 8, 10, 15, 30, tzinfo=UTC)
    start, end = windows.archive_range(now, 30, None, None, settle_minutes=60)
    assert start is None and end == windows.day_start_ns(date(2023, 7, 11))
    start, end = windows.archive_range(now, 0, datetime(2023, 7, 1, 12, tzinfo=UTC), datetime(2023, 7, 3, 6, tzinfo=UTC))
    assert (start, end) == (windows.day_start_ns(date(2023, 7, 1)), windows.day_start_ns(date(2023, 7, 3)))


def test_age_zero_means_up_to_the_last_complete_day():
    # 15:30: yesterday ended 15.5 h ago, today is open.
    now = datetime(2023, 8, 10, 15, 30, tzinfo=UTC)
    assert windows.archive_range(now, 0, None, None, settle_minutes=60) == (None, windows.day_start_ns(date(2023, 8, 10)))
    # 00:30 with 60 settle minutes: yesterday is not settled yet, so it waits.
    early = datetime(2023, 8, 10, 0, 30, tzinfo=UTC)
    assert windows.archive_range(early, 0, None, None, settle_minutes=60)[1] == windows.day_start_ns(date(2023, 8, 9))
    assert windows.archive_range(early, 0, None, None, settle_minutes=20)[1] == windows.day_start_ns(date(2023, 8, 10))
    # A small age never reaches into an unsettled day either.
    assert windows.archive_range(early, 0.01, None, None, settle_minutes=60)[1] == windows.day_start_ns(date(2023, 8, 9))
    # Only the explicit flag lets today in.
    assert windows.archive_range(now, 0, None, None, settle_minutes=60, include_today=True)[1] == windows.day_start_ns(date(2023, 8, 11))


@pytest.mark.parametrize(
    ("older", "start", "end", "include_today", "message"),
    [
        (-3, None, None, False, "cannot be negative"),
        (0, datetime(2023, 7, 3, tzinfo=UTC), datetime(2023, 7, 1, tzinfo=UTC), False, "is not before --end"),
        (0, datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 7, 1, tzinfo=UTC), False, "is not before --end"),
        # Less than a whole day between them: nothing to archive is not success.
        (0, datetime(2023, 7, 1, 1, tzinfo=UTC), datetime(2023, 7, 1, 23, tzinfo=UTC), False, "no whole day"),
        # Today is not complete: an explicit --end into it needs --include-today.
        (0, None, datetime(2023, 8, 11, tzinfo=UTC), False, "--include-today"),
        # --start today with the default end (the last complete day): empty.
        (0, datetime(2023, 8, 10, tzinfo=UTC), None, False, "no whole day"),
    ],
)
def test_contradictory_or_empty_ranges_are_usage_errors(older, start, end, include_today, message):
    now = datetime(2023, 8, 10, 15, 30, tzinfo=UTC)
    with pytest.raises(UsageError, match=message):
        windows.archive_range(now, older, start, end, settle_minutes=60, include_today=include_today)


def test_explicit_end_into_today_with_the_flag():
    now = datetime(2023, 8, 10, 15, 30, tzinfo=UTC)
    got = windows.archive_range(now, 0, datetime(2023, 8, 10, tzinfo=UTC), datetime(2023, 8, 11, tzinfo=UTC),
                             settle_minutes=60, include_today=True)
    assert got == (windows.day_start_ns(date(2023, 8, 10)), windows.day_start_ns(date(2023, 8, 11)))


def test_every_query_names_database_policy_and_measurement():
    w = windows.Window("field1", date(2023, 7, 1), "000001", "one_year", "field1__one_year")
    assert influxql.select_window("micro grid", w).startswith('SELECT * FROM "micro grid"."one_year"."field1" WHERE ')
    assert influxql.count_window("db", w).startswith('SELECT count(*) FROM "db"."one_year"."field1" WHERE ')
    assert influxql.count_window("db", w, "autogen").startswith('SELECT count(*) FROM "db"."autogen"."field1" WHERE ')
    assert influxql.first_points("db", 'r"p', "m", 0, 10) == (
        'SELECT * FROM "db"."r\\"p"."m" WHERE time >= 0 AND time < 10 GROUP BY "site_id" LIMIT 1')
    # DELETE takes no policy in InfluxQL (it reaches every one): the verdict guards it.
    assert influxql.delete_window(w).startswith('DELETE FROM "field1" WHERE ')
    assert w.part_key(0) == "field1__one_year/site_id=000001/date=2023-07-01/part-00000.parquet"
    assert w.delete_key == ("field1", "000001", date(2023, 7, 1))


def test_policies_other_than_the_sinks_get_tables_of_their_own():
    assert layout.table_name("field1", "autogen", "autogen") == "field1"
    assert layout.table_name("field1", "one_year", "autogen") == "field1__one_year"
    assert layout.table_collisions([("field1", "autogen"), ("field1", "one_year")], "autogen") == []
    clash = layout.table_collisions([("field1__one_year", "autogen"), ("field1", "one_year")], "autogen")
    assert clash == ['field1__one_year: "one_year"."field1", "autogen"."field1__one_year"']


@pytest.mark.parametrize(
    ("archived", "influx", "allowed", "refused", "changed"),
    [
        # Only the sink's policy holds points, and it was archived: delete.
        ({"autogen": {"v": 3}}, {"autogen": {"v": 3}, "ds": {}}, True, "", ""),
        # Another policy holds points in the window: the DELETE would take them too.
        ({"autogen": {"v": 3}}, {"autogen": {"v": 3}, "ds": {"mean_v": 2}}, False, '"ds" holds 2 values', ""),
        # Both archived (--all-policies): one DELETE for both.
        ({"autogen": {"v": 3}, "ds": {"mean_v": 2}}, {"autogen": {"v": 3}, "ds": {"mean_v": 2}}, True, "", ""),
        # Points arrived since the export: not deleted, not a refusal.
        ({"autogen": {"v": 3}}, {"autogen": {"v": 4}}, False, "", '"autogen" changed'),
    ],
)
def test_delete_verdict(archived, influx, allowed, refused, changed):
    verdict = retention.delete_verdict(archived, influx)
    assert verdict.allowed is allowed
    assert refused in verdict.refused and (verdict.refused == "") == (refused == "")
    assert changed in verdict.changed and (verdict.changed == "") == (changed == "")


def test_delete_statement_is_bounded_and_quoted():
    w = windows.Window('we"ird', date(2023, 7, 1), "o'neil")
    sql = influxql.delete_window(w)
    assert sql == (
        'DELETE FROM "we\\"ird" WHERE "site_id" = \'o\\\'neil\''
        f" AND time >= {w.start_ns} AND time < {w.end_ns}"
    )


def _part(index, counts, sealed=False, deleted=False):
    return {"index": index, "field_counts": counts, "sealed": sealed, "deleted": deleted}


@pytest.mark.parametrize(
    ("parts", "counts", "stored_ok", "delete", "expected"),
    [
        ([], {"v": 3}, False, True, (manifests.Step.EXPORT, 0)),
        ([], {}, False, True, (manifests.Step.NOTHING, 0)),
        ([_part(0, {"v": 3})], {"v": 3}, True, True, (manifests.Step.DELETE_ONLY, 0)),
        ([_part(0, {"v": 3})], {"v": 3}, True, False, (manifests.Step.SKIP, 0)),
        # Object missing or corrupt in the store: export again into the same part.
        ([_part(0, {"v": 3})], {"v": 3}, False, True, (manifests.Step.EXPORT, 0)),
        # More points since (kept in InfluxDB): re-export replaces the open part.
        ([_part(0, {"v": 3})], {"v": 5}, True, False, (manifests.Step.EXPORT, 0)),
        # Killed after sealing, before DELETE: delete, no new upload.
        ([_part(0, {"v": 3}, sealed=True)], {"v": 3}, True, True, (manifests.Step.DELETE_ONLY, 0)),
        # Deleted day with late points: consolidated into a new part (a new index).
        ([_part(0, {"v": 3}, sealed=True, deleted=True)], {"v": 3}, True, True, (manifests.Step.CONSOLIDATE, 1)),
        ([_part(0, {"v": 3}, sealed=True, deleted=True)], {"v": 1}, True, True, (manifests.Step.CONSOLIDATE, 1)),
        # Killed after sealing, and more points came: the sealed part is merged too.
        ([_part(0, {"v": 3}, sealed=True)], {"v": 4}, True, True, (manifests.Step.CONSOLIDATE, 1)),
        # A consolidated open part (index 2) whose InfluxDB points are unchanged: delete it.
        ([{**_part(2, {"v": 9}), "source_counts": {"v": 2}, "replaces": [0, 1]}], {"v": 2}, True, True,
         (manifests.Step.DELETE_ONLY, 2)),
        # ... changed since (kept): consolidated again, never re-exported over (it holds sealed points).
        ([{**_part(2, {"v": 9}), "source_counts": {"v": 2}, "replaces": [0, 1]}], {"v": 3}, True, False,
         (manifests.Step.CONSOLIDATE, 3)),
        # Parts of the old layout (a deleted part-0, an open part-1 beside it): consolidated.
        ([_part(0, {"v": 3}, sealed=True, deleted=True), _part(1, {"v": 1})], {"v": 2}, True, False,
         (manifests.Step.CONSOLIDATE, 2)),
    ],
)
def test_decide(parts, counts, stored_ok, delete, expected):
    manifest = {"parts": parts} if parts else None
    d = manifests.decide(manifest, counts, stored_ok, delete)
    assert (d.step, d.part_index) == expected


def test_consolidated_manifest_lists_the_new_part_alone_and_names_the_replaced():
    window = Window("field1", date(2024, 2, 10), "000001", "autogen", "field1")
    before = {**manifests.new_manifest(window),
              "parts": [{**_part(0, {"v": 3}, True, True), "key": "k0"}, {**_part(1, {"v": 1}), "key": "k1"}]}
    after = manifests.consolidated(before, {**_part(2, {"v": 4}), "key": "k2"})
    assert [p["index"] for p in after["parts"]] == [2] and after["parts"][0]["replaces"] == [0, 1]
    assert after["replaced"] == ["k0", "k1"] and before["parts"][0]["key"] == "k0"  # not mutated
    assert "replaced" not in manifests.without_replaced(after)
    assert manifests.next_index(after) == 3


def test_merge_points_follows_influxdb_rule():
    """One row per (series, time); fields merge; a later write of a field wins;
    a later write without a field leaves it; a tag missing is its own series."""
    old = pa.table({"time": [1, 2, 3], "device": ["a", "a", None], "v": [1.0, 2.0, 3.0], "w": [10, 20, None]})
    new = pa.table({"time": [2, 3, 4, 1, 1], "device": ["a", None, "a", "b", "a"],
                    "v": [None, 33.0, 4.0, 5.0, 1.0]})
    merged = merge.merge_points([old, new], ["v", "w"])
    assert merged.to_pylist() == [
        {"time": 1, "device": "a", "v": 1.0, "w": 10},  # a re-sent copy: once
        {"time": 1, "device": "b", "v": 5.0, "w": None},
        {"time": 2, "device": "a", "v": 2.0, "w": 20},  # a write without v keeps v
        {"time": 3, "device": None, "v": 33.0, "w": None},  # the correction wins
        {"time": 4, "device": "a", "v": 4.0, "w": None},
    ]
    assert merge.field_counts(merged, ["v", "w"]) == {"v": 5, "w": 2}
    # Three writes in order: the last wins, whatever the key's order in the input.
    third = pa.table({"time": [3], "device": pa.array([None], pa.string()), "v": [333.0]})
    assert merge.merge_points([old, new, third], ["v", "w"]).column("v").to_pylist()[3] == 333.0


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


def test_shard_split_is_a_stable_partition_of_the_sites():
    from edge.archive.shard import Shard, parse_shard, shard_of

    sites = [f"{i:06d}" for i in range(1000)]
    for count in (1, 2, 3, 7):
        shards = [Shard(i, count) for i in range(1, count + 1)]
        # Every site in exactly one shard: together every window, never one twice.
        assert all(sum(s.holds(site) for s in shards) == 1 for site in sites)
        sizes = [sum(s.holds(site) for site in sites) for s in shards]
        assert min(sizes) > 1000 / count * 0.8, sizes  # an even split, not one heavy archiver
    # Stable across hosts and runs (SHA-256, not Python's salted hash()): pinned values.
    assert [shard_of(s, 4) for s in ("000001", "000002", "000003")] == [1, 3, 4]
    assert parse_shard("2/3") == Shard(2, 3) and parse_shard(None) is None
    for bad in ("0/3", "4/3", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(UsageError):
            parse_shard(bad)
