"""Late points for an archived and deleted day, against the real InfluxDB (and moto S3).

The issue's case: 1,000 points of 2024-02-10 archived with --delete; then 200 new
points, 100 re-sent copies of earlier ones and one correction (same series and
time, another value of one field); a second archive --delete. The day's archive
must then read as InfluxDB would hold the day: 1,200 rows, each (series, time)
once, the correction's value, the other field of the corrected point kept, in
DuckDB (``edge query --local``) and in ``edge restore`` alike. A kill -9 at each
step of the consolidation leaves a day that reads either as before or as after,
and the next run finishes.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest
import requests
from influxdb import InfluxDBClient
from moto import mock_aws

from edge.archive import windows
from edge.archive.archiver import archive
from edge.archive.consolidation import KILL_ENV, STEPS
from edge.archive.restore_parts import current_files
from edge.archive.s3 import S3Store
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from edge.ops.restore import restore
from edge.query.local import run_local_sql

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFLUX = InfluxSettings().url
DAY = date(2024, 2, 10)
START, END = datetime(2024, 2, 10, tzinfo=UTC), datetime(2024, 2, 11, tzinfo=UTC)
TAGS = "device=rack\\ 1,site_id=000001"
DAY_DIR = "field1/site_id=000001/date=2024-02-10"
CORRECTED = 500


def _t(i: int) -> int:
    return windows.day_start_ns(DAY) + i * 60 * 10**9


def _v(i: int) -> float:
    return round(i * 0.25 + 0.125, 3)


def _write(db: str, lines: list[str]) -> None:
    r = requests.post(f"{INFLUX}/write", params={"db": db}, data="\n".join(lines).encode())
    assert r.status_code == 204, r.text


def _first_batch() -> list[str]:
    return [f"field1,{TAGS} v={_v(i)!r},w={i}i {_t(i)}" for i in range(1000)]


def _late_batch() -> list[str]:
    new = [f"field1,{TAGS} v={_v(i)!r},w={i}i {_t(i)}" for i in range(1000, 1200)]
    resent = [f"field1,{TAGS} v={_v(i)!r},w={i}i {_t(i)}" for i in range(100)]
    correction = [f"field1,{TAGS} v=-1.5 {_t(CORRECTED)}"]  # only v: w stays
    return new + resent + correction


def _expected() -> dict[int, tuple[float, int]]:
    """time (ns) -> (v, w): what InfluxDB would hold had nothing been deleted."""
    rows = {_t(i): (_v(i), i) for i in range(1200)}
    rows[_t(CORRECTED)] = (-1.5, CORRECTED)
    return rows


@pytest.fixture
def db(local_services, names):
    name = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
    yield name
    for d in (name, name + "_restored"):
        requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{d}"'})


def _settings(db: str, tmp_path, bucket: str | None = None) -> ArchiveSettings:
    return ArchiveSettings(
        influxdb=InfluxSettings(database=db),
        archive=ArchiveOptions(directory=str(tmp_path / "archive"), chunk_rows=256),
        s3=S3Settings(bucket=bucket),
    )


def _in_influx(db: str) -> int:
    client = InfluxDBClient(host="127.0.0.1", port=int(INFLUX.rsplit(":", 1)[1]), database=db)
    try:
        rs = client.query(f"SELECT count(v) FROM field1 WHERE time >= {_t(0)} AND time < {_t(1440)}")
        return sum(p["count"] for p in rs.get_points())
    finally:
        client.close()


def _sql(archive_dir: str, sql: str, *, glob: bool = False) -> list[dict]:
    """DuckDB over the archive as ``edge query --local`` reads it (the manifests'
    parts), or over every Parquet file there (``glob``: what a lister like Athena sees)."""
    text = run_local_sql(sql, archive_dir, None if glob else current_files(archive_dir))
    return list(csv.DictReader(io.StringIO(text)))


def _day_figures(archive_dir: str, *, glob: bool = False) -> dict:
    row = _sql(archive_dir, "SELECT count(*) AS n, count(DISTINCT time) AS times, sum(v) AS sv, sum(w) AS sw"
               " FROM field1 WHERE site_id = '000001' AND \"date\" = '2024-02-10'", glob=glob)[0]
    return {"n": int(row["n"]), "times": int(row["times"]), "sv": float(row["sv"]), "sw": int(row["sw"])}


def _figures(rows: dict[int, tuple[float, int]]) -> dict:
    return {"n": len(rows), "times": len(rows), "sv": pytest.approx(sum(v for v, _ in rows.values())),
            "sw": sum(w for _, w in rows.values())}


BEFORE = {_t(i): (_v(i), i) for i in range(1000)}


def _assert_final(settings: ArchiveSettings, db: str) -> None:
    archive_dir = settings.archive.directory
    assert _day_figures(archive_dir) == _figures(_expected())
    assert _day_figures(archive_dir, glob=True) == _figures(_expected())  # nothing else left on disk
    point = _sql(archive_dir, "SELECT v, w FROM field1 WHERE time = TIMESTAMPTZ '2024-02-10 08:20:00+00'")
    assert point == [{"v": "-1.5", "w": str(CORRECTED)}]
    assert sorted(os.listdir(os.path.join(archive_dir, DAY_DIR))) == ["_manifest.json", "part-00001.parquet"]
    assert _in_influx(db) == 0
    # edge restore of the day agrees, value for value.
    summary = restore(settings, ["field1"], START, END, into=db + "_restored")
    assert summary.points == 1200
    client = InfluxDBClient(host="127.0.0.1", port=int(INFLUX.rsplit(":", 1)[1]), database=db + "_restored")
    try:
        restored = {p["time"]: (p["v"], p["w"]) for p in client.query("SELECT v, w FROM field1", epoch="ns").get_points()}
    finally:
        client.close()
    assert restored == _expected()


def test_late_points_resent_copies_and_a_correction_consolidate_the_day(db, tmp_path, edge_env):
    settings = _settings(db, tmp_path)
    _write(db, _first_batch())
    first = archive(settings, START, END, delete=True, progress=False)
    assert (first.exported, first.deleted, first.consolidated) == (1, 1, 0)
    assert _in_influx(db) == 0 and _day_figures(settings.archive.directory) == _figures(BEFORE)

    _write(db, _late_batch())
    assert _in_influx(db) == 301
    second = archive(settings, START, END, delete=True, progress=False)
    assert (second.exported, second.consolidated, second.deleted, second.failed) == (1, 1, 1, 0)
    _assert_final(settings, db)
    # The command itself: edge query --local reads the day as InfluxDB would hold it.
    sql = "SELECT count(*) AS n, count(DISTINCT time) AS t, sum(v) AS s FROM field1 WHERE \"date\" = '2024-02-10'"
    cli = subprocess.run([sys.executable, "-m", "edge.cli", "query", "--local", sql], cwd=ROOT, timeout=60,
                         env={**os.environ, **edge_env, "PYTHONPATH": ROOT}, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    n, t, total = cli.stdout.splitlines()[1].split(",")
    assert (int(n), int(t), float(total)) == (1200, 1200, pytest.approx(_figures(_expected())["sv"].expected))
    # Nothing more to do, and a re-run changes nothing.
    third = archive(settings, START, END, delete=True, progress=False)
    assert (third.exported, third.deleted, third.windows) == (0, 0, 0)


def test_consolidation_on_s3_removes_the_replaced_part_after_the_switch(db, tmp_path, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        settings = _settings(db, tmp_path, "archive-consolidation")
        store = S3Store(settings.s3)
        store.client.create_bucket(Bucket="archive-consolidation")
        _write(db, _first_batch())
        archive(settings, START, END, store=store, progress=False)
        _write(db, _late_batch())
        second = archive(settings, START, END, store=store, progress=False)
        assert (second.consolidated, second.deleted) == (1, 1)
        assert sorted(store.keys(DAY_DIR)) == [f"{DAY_DIR}/_manifest.json", f"{DAY_DIR}/part-00001.parquet"]
        manifest = store.get_json(f"{DAY_DIR}/_manifest.json")
        assert [(p["index"], p["replaces"], p["rows"], p["deleted"]) for p in manifest["parts"]] == [(1, [0], 1200, True)]
        assert "replaced" not in manifest
        assert manifest["parts"][0]["source_counts"] == {"v": 301, "w": 300}
        _assert_final(settings, db)


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_each_consolidation_step_leaves_a_correct_day_and_the_next_run_finishes(db, tmp_path, edge_env, step):
    settings = _settings(db, tmp_path)
    _write(db, _first_batch())
    archive(settings, START, END, delete=True, progress=False)
    _write(db, _late_batch())

    env = {**os.environ, **edge_env, "PYTHONPATH": ROOT}
    argv = [sys.executable, "-m", "edge.cli", "archive", "--start", "2024-02-10", "--end", "2024-02-11", "--delete"]
    killed = subprocess.run(argv, env={**env, KILL_ENV: step}, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr

    # The day reads as before the switch (the archive and InfluxDB hold it) or as
    # after it; never both the old and the new part, never neither.
    switched = STEPS.index(step) >= STEPS.index("switched")
    assert _day_figures(settings.archive.directory) == _figures(_expected() if switched else BEFORE)
    assert _in_influx(db) == 301  # nothing deleted before the consolidation is complete

    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted=1" in done.stdout and "failed=0" in done.stdout
    _assert_final(settings, db)
