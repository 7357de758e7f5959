"""``edge restore``: archived rows -> line protocol (exact per type), the archive's
layout read back, and on the real InfluxDB: archive (local and S3 on moto),
restore into another database, every value and type equal to the original."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from datetime import UTC, date, datetime

import boto3
import pyarrow as pa
import pytest
from moto import mock_aws

from edge.archive.archiver import archive
from edge.archive.s3 import S3Store
from edge.core.errors import NotFoundError, RefusedError
from edge.ops.restore import restore
from edge.runtime.progress import span_text
from edge.core import lineproto
from edge.ops.restore_lines import bodies, line_array, value_count
from edge.archive.layout import parse_part_key
from edge.archive.restore_parts import fields_of
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from tests.support import influx
from tests.support.processes import ROOT

# ------------------------------------------------------------------ pure parts


def _table(**columns) -> pa.Table:
    return pa.table(columns)


def test_lines_keep_every_type_and_escape_what_influxdb_unescapes():
    t = _table(
        time=pa.array([1_000_001, 2_000_000], pa.timestamp("us", tz="UTC")),
        device=["EV Charger/1", "a,b=c\\d"],
        f=[31.0, 0.1 + 0.2], n=pa.array([5, -(2**63)], pa.int64()), b=[True, False],
        s=['q"uo\\te', "line1\nline2"],
    )
    lines = line_array(t, "field 6,x", "000001", ["f", "n", "b", "s"]).to_pylist()
    assert lines == [
        'field\\ 6\\,x,device=EV\\ Charger/1,site_id=000001 b=true,f=31,n=5i,s="q\\"uo\\\\te" 1000001000',
        'field\\ 6\\,x,device=a\\,b\\=c\\d,site_id=000001 b=false,f=0.30000000000000004,'
        f'n={-(2**63)}i,s="line1\nline2" 2000000000',
    ]


def test_null_tags_and_fields_are_left_out_and_rows_without_fields_dropped():
    t = _table(time=pa.array([1, 2, 3], pa.timestamp("us", tz="UTC")), device=["x", None, "z"],
               f=[1.5, None, None], g=pa.array([None, None, 2.5], pa.float64()))
    # The row without any field sits in the middle: the rows after it keep their own tags and time.
    assert line_array(t, "m", None, ["f", "g"]).to_pylist() == ["m,device=x f=1.5 1000", "m,device=z g=2.5 3000"]
    assert value_count(t, ["f", "g"]) == 2
    assert fields_of(t.schema) == {"f", "g"}
    assert lineproto.quote("a b,c=d", lineproto.TAG) == "a\\ b\\,c\\=d"
    assert lineproto.quote("a b,c=d", lineproto.MEASUREMENT) == "a\\ b\\,c=d"
    # A field key's quote is escaped as the parser writes it: InfluxDB unescapes it there.
    assert lineproto.quote('a"b', lineproto.FIELD) == 'a\\"b'


def test_bodies_are_newline_joined_batches():
    lines = pa.array([f"m f={i} {i}" for i in range(5)])
    assert list(bodies(lines, 2)) == [(b"m f=0 0\nm f=1 1", 2), (b"m f=2 2\nm f=3 3", 2), (b"m f=4 4", 1)]
    assert list(bodies(lines.slice(3), 5)) == [(b"m f=3 3\nm f=4 4", 2)]
    assert list(bodies(pa.array([], pa.string()), 5)) == []


def _key_says(key: str):
    found = parse_part_key(key)
    return None if found is None else (found.table, found.site_id, found.day)


def test_archive_keys_name_their_table_site_and_day():
    assert _key_says("field6/site_id=000001/date=2024-06-01/part-00000.parquet") == (
        "field6", "000001", date(2024, 6, 1))
    assert _key_says("f%2Fg/site_id=a%2Fb/date=2024-06-01/part-00001.parquet") == ("f/g", "a/b", date(2024, 6, 1))
    assert _key_says("f/site_id=__HIVE_DEFAULT_PARTITION__/date=2024-06-01/part-00000.parquet")[1] is None
    for other in ("f/site_id=1/date=2024-06-01/_manifest.json", "f/site_id=1/date=2024-06-01/.part-0.parquet.tmp",
                  "f/site_id=1/date=nope/part-00000.parquet", "f/site_id=1/part-00000.parquet",
                  "f/x/site_id=1/date=2024-06-01/part-00000.parquet"):
        assert parse_part_key(other) is None


def test_ranges_read_as_an_operator_says_them():
    d = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    assert span_text(d(2025, 1, 1), d(2025, 1, 2)) == "on 2025-01-01"
    assert span_text(date(2025, 1, 1), date(2025, 1, 4)) == "from 2025-01-01 through 2025-01-03"
    assert span_text(d(2025, 1, 1, 6), d(2025, 1, 2, 12)) == (
        "from 2025-01-01T06:00:00Z to 2025-01-02T12:00:00Z (end excluded)")


# ------------------------------------------------------------------ on the real InfluxDB

MEASUREMENT = "field6"
DAY1, DAY2 = 1_717_200_000, 1_717_286_400  # 2024-06-01 00:00Z, 2024-06-02 00:00Z
LINES = []
for i in range(300):
    t = DAY1 + i * 577  # across both days
    for site, device in (("000001", "EV Charger/1"), ("000002", "Inverter, A=1")):
        dev = device.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")
        fields = [f"power={i * 1.1 + 0.1}", f"volts={230 + i % 7}", f"run={'true' if i % 3 else 'false'}"]
        if i % 5 == 0:
            fields.append(f"count={i * 1000}i")
        if i % 11 == 0:
            fields.append('note="say \\"hi\\" C:\\\\temp\nnext line"')
        LINES.append(f"{MEASUREMENT},device={dev},service_id={i % 3},site_id={site} {','.join(fields)} {t}{i % 1000:03d}000000")


def _write(url: str, db: str, lines: list[str]) -> None:
    influx.execute(url, f'CREATE DATABASE "{db}"')
    body = "\n".join(lines).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/write?db={db}&precision=ns", data=body), timeout=30)


def _rows(url: str, db: str, where: str) -> list[list]:
    series = influx.query(url, db, f'SELECT * FROM "{MEASUREMENT}" WHERE {where}')
    return [values for s in series for values in s["values"]]


def _field_types(url: str, db: str) -> set:
    return {tuple(v) for s in influx.query(url, db, f'SHOW FIELD KEYS FROM "{MEASUREMENT}"') for v in s["values"]}


@pytest.fixture
def databases(local_services, names):
    url = local_services["influxdb"].url
    live, into = names["database"], names["database"] + "_restored"
    _write(url, live, LINES)
    yield url, live, into
    for db in (live, into):
        influx.execute(url, f'DROP DATABASE "{db}"')


def _settings(live: str, tmp_path, s3: S3Settings | None = None) -> ArchiveSettings:
    return ArchiveSettings(influxdb=InfluxSettings(database=live),
                           archive=ArchiveOptions(directory=str(tmp_path / "archive")), s3=s3 or S3Settings())


def test_archive_then_restore_one_site_into_another_database_value_for_value(databases, tmp_path, edge_env):
    url, live, into = databases
    settings = _settings(live, tmp_path)
    done = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC), keep=True,
                   measurements=[MEASUREMENT])
    assert done.failed == 0 and done.exported == 4  # two sites x two days

    env = dict(edge_env, EDGE_INFLUXDB__DATABASE=live, EDGE_ARCHIVE__DIRECTORY=str(tmp_path / "archive"))
    cli = subprocess.run(
        [sys.executable, "-m", "edge.cli", "restore", "--measurement", MEASUREMENT, "--site", "000002",
         "--start", "2024-06-01T06:00:00Z", "--end", "2024-06-02T12:00:00Z", "--into", into, "--batch-lines", "50"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    window = "site_id = '000002' AND time >= '2024-06-01T06:00:00Z' AND time < '2024-06-02T12:00:00Z'"
    original = _rows(url, live, window)
    assert 100 < len(original) < 300
    assert _rows(url, into, "time > 0") == original  # nothing more, nothing less, every value equal
    assert _field_types(url, into) == _field_types(url, live) == {
        ("power", "float"), ("volts", "float"), ("run", "boolean"), ("count", "integer"), ("note", "string")}
    values = sum(1 for row in original for v in row[1:] if v is not None) - 3 * len(original)  # minus tags
    assert f"points={len(original)} values={values} " in cli.stdout
    assert 'say "hi" C:\\temp\nnext line' in {v for row in original for v in row}  # the hard string went through

    # Again: the same database, not doubled.
    restore(settings, [MEASUREMENT], datetime(2024, 6, 1, 6, tzinfo=UTC), datetime(2024, 6, 2, 12, tzinfo=UTC), into,
            sites={"000002"})
    assert _rows(url, into, "time > 0") == original


def test_restore_refuses_the_live_database_unless_told(databases, tmp_path, edge_env):
    url, live, _into = databases
    settings = _settings(live, tmp_path)
    with pytest.raises(RefusedError, match="live database"):
        restore(settings, [MEASUREMENT], datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), live)
    with pytest.raises(NotFoundError, match=r"^no archived field6 for any site on 2024-06-01 in /"):
        restore(settings, [MEASUREMENT], datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), live,
                into_live=True)
    env = dict(edge_env, EDGE_INFLUXDB__DATABASE=live)
    cli = subprocess.run([sys.executable, "-m", "edge.cli", "restore", "--measurement", MEASUREMENT, "--start",
                          "2024-06-01", "--end", "2024-06-02", "--into", live], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0 and "live database" in cli.stderr


def test_restore_from_s3_when_configured(databases, tmp_path, monkeypatch):
    url, live, into = databases
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    s3 = S3Settings(bucket="edge-restore-test", region="us-east-1")
    settings = _settings(live, tmp_path, s3)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=s3.bucket)
        done = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), keep=True,
                       measurements=[MEASUREMENT], store=S3Store(s3))
        assert done.failed == 0 and done.exported == 2
        shutil.rmtree(tmp_path / "archive")  # only S3 holds it now
        summary = restore(settings, [MEASUREMENT], datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC),
                          into)
    day = "time >= '2024-06-01T00:00:00Z' AND time < '2024-06-02T00:00:00Z'"
    original = _rows(url, live, day)
    assert summary.points == len(original) and summary.parts == 2
    assert _rows(url, into, "time > 0") == original


# ------------------------------------------------------------------ several measurements

OTHERS = {"field7": 40, "field8": 25}  # points per site on 2024-06-01, besides field6


def _other_lines() -> list[str]:
    return [f"{m},site_id={site} power={i}.5 {DAY1 + i * 60}000000000"
            for m, n in OTHERS.items() for site in ("000001", "000002") for i in range(n)]


def _count(url: str, db: str, measurement: str) -> int:
    series = influx.query(url, db, f'SELECT count("power") FROM "{measurement}"')
    return sum(v[1] for s in series for v in s["values"])


def _measurements(url: str, db: str) -> set[str]:
    return {v[0] for s in influx.query(url, db, "SHOW MEASUREMENTS") for v in s["values"]}


def _restore_cli(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "restore", "--start", "2024-06-01", "--end", "2024-06-02",
                           *argv], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_restore_takes_several_measurements_or_every_one(databases, tmp_path, edge_env):
    url, live, into = databases
    _write(url, live, _other_lines())
    settings = _settings(live, tmp_path)
    done = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), keep=True)
    assert done.failed == 0 and done.exported == 6  # three measurements x two sites
    day = "time >= '2024-06-01T00:00:00Z' AND time < '2024-06-02T00:00:00Z'"
    field6 = len(_rows(url, live, day))
    env = dict(edge_env, EDGE_INFLUXDB__DATABASE=live, EDGE_ARCHIVE__DIRECTORY=str(tmp_path / "archive"))

    two = _restore_cli(env, "--measurement", "field6", "--measurement", "field7", "--into", into)
    assert two.returncode == 0, two.stdout + two.stderr
    assert _measurements(url, into) == {"field6", "field7"}  # both, and nothing else
    assert len(_rows(url, into, "time > 0")) == field6 and _count(url, into, "field7") == 2 * OTHERS["field7"]
    assert two.stdout.startswith(
        f"restore: field6 ({field6} points), field7 ({2 * OTHERS['field7']} points) from sites 000001, 000002"
        f" into {into}: parts=4 points={field6 + 2 * OTHERS['field7']} "), two.stdout

    every = into + "_all"
    try:
        none = _restore_cli(env, "--into", every)
        assert none.returncode == 0, none.stdout + none.stderr
        assert _measurements(url, every) == {"field6", "field7", "field8"}
        assert [_count(url, every, m) for m in OTHERS] == [2 * n for n in OTHERS.values()]
        assert _rows(url, every, "time > 0") == _rows(url, live, day)
        assert "field8 (50 points) from sites 000001, 000002" in none.stdout, none.stdout
    finally:
        influx.execute(url, f'DROP DATABASE "{every}"')

    missing = _restore_cli(env, "--measurement", "field7", "--measurement", "field9", "--site", "000002",
                           "--into", into)
    assert missing.returncode == 5, missing.stderr
    assert missing.stderr.strip().endswith(
        f"no archived field9 for site 000002 on 2024-06-01 in {tmp_path / 'archive'} (found: field6, field7, field8)"
    ), missing.stderr
    # A mistyped name alone still learns what the archive holds there.
    typo = _restore_cli(env, "--measurement", "feild6", "--into", into)
    assert typo.returncode == 5, typo.stderr
    assert typo.stderr.strip().endswith(
        f"no archived feild6 for any site on 2024-06-01 in {tmp_path / 'archive'} (found: field6, field7, field8)"
    ), typo.stderr
    empty = _restore_cli(env, "--measurement", "field6", "--site", "000009", "--into", into)
    assert empty.returncode == 5 and empty.stderr.strip().endswith("(nothing archived there)"), empty.stderr
