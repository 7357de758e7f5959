"""The archive against the real InfluxDB (its own database per test) and moto S3.

Points are written as the parser would (line protocol over /write): measurement
field1 plus its nested field1_racks, tags site_id/device/service_id (device with
spaces, commas, equals signs and a slash), float and boolean fields.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import botocore.exceptions
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import requests
from influxdb import InfluxDBClient
from moto import mock_aws

from edge.archive import windows
from edge.archive.archiver import archive
from edge.archive.s3 import S3Store
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from edge.query.local import run_local_sql

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFLUX = InfluxSettings().url
DAYS = [date(2023, 7, 1), date(2023, 7, 2)]
SITES = ["000001", "000002"]
DEVICE = "Rack A, Bay=1 / West"  # spaces, comma, equals, slash
START = datetime(2023, 7, 1, tzinfo=UTC)
END = datetime(2023, 7, 3, tzinfo=UTC)
BUCKET = "archive-test"


def _esc_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _lines() -> list[str]:
    lines = []
    for s_i, site in enumerate(SITES):
        tags = f"device={_esc_tag(DEVICE)},service_id=1,site_id={site}"
        for day in DAYS:
            base = windows.day_start_ns(day)
            for i in range(40):
                t = base + i * 1_800 * 10**9 + 7_000  # 30 min apart, with microseconds
                v = round(0.1 * i + s_i + day.day / 7, 6)
                run = "true" if (i + s_i) % 3 else "false"
                lines.append(f"field1,{tags} v={v!r},run={run} {t}")
                if i % 4 == 0:
                    lines.append(f"field1_racks,{tags},rack=1 soc={v * 2!r},fault=false {t}")
    # Outside the window: a second before its start, exactly at its end.
    tags = f"device={_esc_tag(DEVICE)},service_id=1,site_id=000001"
    lines.append(f"field1,{tags} v=99.5,run=true {windows.day_start_ns(DAYS[0]) - 10**9}")
    lines.append(f"field1,{tags} v=77.25,run=false {windows.day_start_ns(date(2023, 7, 3))}")
    return lines


WINDOWS = len(SITES) * len(DAYS) * 2  # two measurements


@pytest.fixture
def influx_db(local_services, names):
    db = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    r = requests.post(f"{INFLUX}/write", params={"db": db}, data="\n".join(_lines()).encode())
    assert r.status_code == 204, r.text
    client = InfluxDBClient(host="127.0.0.1", port=int(INFLUX.rsplit(":", 1)[1]), database=db)
    yield client
    requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{db}"'})
    client.close()


@pytest.fixture
def s3(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


def _settings(db: str, tmp_path, bucket: str | None = None) -> ArchiveSettings:
    return ArchiveSettings(
        influxdb=InfluxSettings(database=db),
        archive=ArchiveOptions(directory=str(tmp_path / "archive"), chunk_rows=25),
        s3=S3Settings(bucket=bucket),
    )


def _store(settings: ArchiveSettings) -> S3Store:
    store = S3Store(settings.s3)
    store.client.create_bucket(Bucket=BUCKET)
    return store


def _points(client: InfluxDBClient, measurement: str, where: str = "") -> list[dict]:
    rs = client.query(f'SELECT * FROM "{measurement}" {where}', epoch="ns")
    return list(rs.get_points())


def _in_window() -> str:
    return f"WHERE time >= {windows.day_start_ns(DAYS[0])} AND time < {windows.day_start_ns(date(2023, 7, 3))}"


def _typed(value):
    return (type(value).__name__, value)


def _archive_rows(archive_dir, measurement: str) -> list[dict]:
    part = ds.partitioning(pa.schema([("site_id", pa.string()), ("date", pa.string())]), flavor="hive")
    table = ds.dataset(os.path.join(archive_dir, measurement), format="parquet", partitioning=part).to_table()
    return table.to_pylist(), table.schema


def _count_sum(client: InfluxDBClient, measurement: str, field: str) -> tuple[int, float]:
    rs = client.query(f'SELECT count("{field}"), sum("{field}") FROM "{measurement}" {_in_window()}')
    row = next(iter(rs.get_points()))
    return row["count"], row["sum"]


def _upload_counter(store: S3Store) -> list[str]:
    keys: list[str] = []

    def count(params, **_):
        if params["Key"].endswith(".parquet"):
            keys.append(params["Key"])

    store.client.meta.events.register("before-parameter-build.s3.PutObject", count)
    store.client.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", count)
    return keys


def test_archive_is_lossless_queryable_and_deletes_exactly_the_window(influx_db, names, tmp_path, s3):
    db = names["database"]
    settings = _settings(db, tmp_path, BUCKET)
    store = _store(settings)
    before = {m: _points(influx_db, m, _in_window()) for m in ("field1", "field1_racks")}
    sums = {("field1", "v"): _count_sum(influx_db, "field1", "v"), ("field1_racks", "soc"): _count_sum(influx_db, "field1_racks", "soc")}
    assert len(before["field1"]) == 160 and len(before["field1_racks"]) == 40

    summary = archive(settings, START, END, store=store, progress=False)

    assert (summary.windows, summary.exported, summary.deleted, summary.failed) == (WINDOWS, WINDOWS, WINDOWS, 0)
    assert summary.rows == 200
    # Value by value, type by type: the Parquet rows are InfluxDB's points.
    archive_dir = settings.archive.directory
    for m, points in before.items():
        rows, schema = _archive_rows(archive_dir, m)
        assert schema.field("time").type == pa.timestamp("us", tz="UTC")
        assert schema.field("device").type == pa.string()
        field_types = {"v": pa.float64(), "run": pa.bool_(), "soc": pa.float64(), "fault": pa.bool_()}
        for name, t in field_types.items():
            if name in schema.names:
                assert schema.field(name).type == t, name
        expected = sorted(
            tuple(sorted((k, _typed(v)) for k, v in p.items() if v is not None)) for p in points
        )
        got = []
        for r in rows:
            r = dict(r)
            r["time"] = windows.to_ns(r.pop("time"))
            r.pop("date")
            got.append(tuple(sorted((k, _typed(v)) for k, v in r.items() if v is not None)))
        assert sorted(got) == expected
        assert {r["device"] for r in rows} == {DEVICE}

    # The objects in S3 are the local files, byte for byte, with a manifest beside.
    listed = store.client.list_objects_v2(Bucket=BUCKET, Prefix="archive/")["Contents"]
    parquet_keys = sorted(o["Key"] for o in listed if o["Key"].endswith(".parquet"))
    assert len(parquet_keys) == WINDOWS
    assert "archive/field1/site_id=000002/date=2023-07-02/part-00000.parquet" in parquet_keys
    for key in parquet_keys:
        body = store.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        local = open(os.path.join(archive_dir, key.removeprefix("archive/")), "rb").read()
        assert body == local
        manifest = json.loads(
            store.client.get_object(Bucket=BUCKET, Key=key.rsplit("/", 1)[0] + "/_manifest.json")["Body"].read()
        )
        (part,) = manifest["parts"]
        assert part["sha256"] == hashlib.sha256(body).hexdigest() and part["deleted"] is True
        assert part["min_time"].endswith(".000007Z")

    # DuckDB over the archive: the same COUNT and SUM InfluxDB gave before the delete.
    for (m, field), (count, total) in sums.items():
        text = run_local_sql(f"SELECT count({field}) AS n, sum({field}) AS s FROM {m}", archive_dir)
        (row,) = list(csv.DictReader(io.StringIO(text)))
        assert int(row["n"]) == count
        assert math.isclose(float(row["s"]), total, rel_tol=1e-12)
    text = run_local_sql("SELECT count(*) AS n FROM field1 WHERE site_id = '000001' AND date = '2023-07-02'", archive_dir)
    assert text == "n\n40\n"

    # InfluxDB: the windows are gone, the points just outside them are not.
    assert _points(influx_db, "field1", _in_window()) == []
    assert _points(influx_db, "field1_racks") == []
    outside = _points(influx_db, "field1")
    assert sorted(p["v"] for p in outside) == [77.25, 99.5]


def test_s3_failure_mid_run_deletes_nothing_and_rerun_finishes_once(influx_db, names, tmp_path, s3):
    settings = _settings(names["database"], tmp_path, BUCKET)
    store = _store(settings)
    total_before = len(_points(influx_db, "field1")) + len(_points(influx_db, "field1_racks"))
    attempts: list[str] = []

    def second_upload_fails(params, **_):
        if params["Key"].endswith(".parquet"):
            attempts.append(params["Key"])
            if len(attempts) == 2:
                raise botocore.exceptions.EndpointConnectionError(endpoint_url="injected: S3 unreachable")

    store.client.meta.events.register("before-parameter-build.s3.PutObject", second_upload_fails)
    first = archive(settings, START, END, store=store, progress=False)
    assert first.failed == 1 and first.deleted == 0 and first.objects == 1
    total_after = len(_points(influx_db, "field1")) + len(_points(influx_db, "field1_racks"))
    assert total_after == total_before  # nothing deleted while S3 failed

    store.client.meta.events.unregister("before-parameter-build.s3.PutObject", second_upload_fails)
    uploads = _upload_counter(store)
    second = archive(settings, START, END, store=store, progress=False)
    assert second.failed == 0 and second.deleted == WINDOWS
    # The window verified in the first run is not uploaded again.
    assert len(uploads) == WINDOWS - 1 and attempts[0] not in uploads

    third = archive(settings, START, END, store=store, progress=False)
    assert (third.exported, third.deleted, third.objects, third.failed) == (0, 0, 0, 0)
    assert third.windows == 0  # nothing left in InfluxDB for the range
    assert len(uploads) == WINDOWS - 1

    # Each window deleted exactly once (first run 0, second all, third 0), and
    # every manifest says so.
    assert first.deleted + second.deleted + third.deleted == WINDOWS
    manifests = [
        o["Key"] for o in store.client.list_objects_v2(Bucket=BUCKET)["Contents"] if o["Key"].endswith("_manifest.json")
    ]
    assert len(manifests) == WINDOWS
    for key in manifests:
        m = json.loads(store.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert [(p["index"], p["sealed"], p["deleted"]) for p in m["parts"]] == [(0, True, True)]
    assert sorted(p["v"] for p in _points(influx_db, "field1")) == [77.25, 99.5]


def test_local_only_keeps_points_rerun_skips_and_late_points_replace_the_day(influx_db, names, tmp_path, edge_env):
    settings = _settings(names["database"], tmp_path)
    first = archive(settings, START, END, progress=False)
    assert (first.exported, first.deleted) == (WINDOWS, 0)  # no S3: no delete unless asked
    assert len(_points(influx_db, "field1")) == 162
    day_dir = tmp_path / "archive" / "field1" / "site_id=000001" / "date=2023-07-01"
    part = day_dir / "part-00000.parquet"
    mtime = part.stat().st_mtime_ns

    again = archive(settings, START, END, progress=False)
    assert (again.exported, again.skipped, again.deleted, again.objects) == (0, WINDOWS, 0, 0)
    assert part.stat().st_mtime_ns == mtime

    # A late point for a kept day: that day alone is exported again, same file name.
    late = f"field1,device={_esc_tag(DEVICE)},service_id=1,site_id=000001 v=1.5,run=true {windows.day_start_ns(DAYS[0]) + 5_000}"
    requests.post(f"{INFLUX}/write", params={"db": names["database"]}, data=late).raise_for_status()
    third = archive(settings, START, END, progress=False)
    assert (third.exported, third.skipped) == (1, WINDOWS - 1)
    assert sorted(p.name for p in day_dir.iterdir()) == ["_manifest.json", "part-00000.parquet"]
    assert run_local_sql("SELECT count(*) AS n FROM field1 WHERE date = '2023-07-01' AND site_id = '000001'", str(tmp_path / "archive")) == "n\n41\n"

    # The CLI: the plan, then --delete on local disk removes exactly the windows.
    env = {**os.environ, **edge_env, "EDGE_ARCHIVE__DIRECTORY": str(tmp_path / "archive")}
    argv = [sys.executable, "-m", "edge.cli", "archive", "--start", "2023-07-01", "--end", "2023-07-03"]
    dry = subprocess.run(argv + ["--dry-run", "--delete"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("delete-only") == WINDOWS
    assert len(_points(influx_db, "field1")) == 163
    done = subprocess.run(argv + ["--delete"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"deleted={WINDOWS}" in done.stdout and "exported=0" in done.stdout
    assert sorted(p["v"] for p in _points(influx_db, "field1")) == [77.25, 99.5]
