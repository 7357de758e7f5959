"""Archive scope against the real InfluxDB: the retention policy the sink writes,
the DELETE that reaches every policy, and the operator errors of ``edge archive``.

Each test has its own database with two retention policies: ``autogen`` (the
default) and ``ds`` (a downsampled copy, as a continuous query would write it).
Both ways round: the sink writes the default policy, or the configured one.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, date, datetime

import pyarrow.dataset as ds
import pytest
import requests
from prometheus_client import REGISTRY

from edge.archive import windows
from edge.archive.archiver import archive
from edge.cli import build_parser
from edge.commands import archive as archive_command
from edge.core.errors import NotFoundError, RefusedError, UnreachableError, UsageError
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from tests.support.influx import query

INFLUX = InfluxSettings().url
DAY1, DAY2 = date(2023, 7, 1), date(2023, 7, 2)
START, END = datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 7, 3, tzinfo=UTC)
SITE = "000001"


def _q(statement: str, db: str | None = None) -> None:
    resp = requests.post(f"{INFLUX}/query", params={"q": statement, **({"db": db} if db else {})}, timeout=30)
    resp.raise_for_status()
    assert "error" not in resp.text, resp.text


def _write(db: str, rp: str, lines: list[str]) -> None:
    resp = requests.post(f"{INFLUX}/write", params={"db": db, "rp": rp}, data="\n".join(lines).encode(), timeout=30)
    assert resp.status_code == 204, resp.text


def _raw_lines(day: date, n: int = 24) -> list[str]:
    """The sink's points: one an hour, tags as the parser writes them."""
    base = windows.day_start_ns(day)
    return [f"field1,device=Battery,service_id=1,site_id={SITE} v={i + 0.5},run=true {base + i * 3_600 * 10**9}"
            for i in range(n)]


def _ds_lines(day: date) -> list[str]:
    """A downsampled copy: two 12-hour means of the same series."""
    base = windows.day_start_ns(day)
    return [f"field1,device=Battery,service_id=1,site_id={SITE} mean_v={i + 6.0} {base + i * 12 * 3_600 * 10**9}"
            for i in range(2)]


def _count(db: str, rp: str, day: date | None = None) -> int:
    where = ""
    if day is not None:
        start = windows.day_start_ns(day)
        where = f" WHERE time >= {start} AND time < {start + windows.NS_PER_DAY}"
    series = query(INFLUX, db, f'SELECT * FROM "{db}"."{rp}"."field1"{where}')
    return sum(len(s["values"]) for s in series)


@pytest.fixture
def two_policies(local_services, names):
    """A database whose default policy is autogen, plus a second policy ds."""
    db = names["database"]
    _q(f'CREATE DATABASE "{db}"')
    _q(f'CREATE RETENTION POLICY "ds" ON "{db}" DURATION INF REPLICATION 1')
    yield db
    _q(f'DROP DATABASE "{db}"')


def _settings(db: str, tmp_path, rp: str | None = None) -> ArchiveSettings:
    return ArchiveSettings(
        influxdb=InfluxSettings(database=db, retention_policy=rp),
        archive=ArchiveOptions(directory=str(tmp_path / "archive"), chunk_rows=10),
        s3=S3Settings(bucket=None),
    )


def _archived_rows(tmp_path, table: str) -> list[dict]:
    return ds.dataset(tmp_path / "archive" / table, format="parquet", partitioning="hive").to_table().to_pylist()


def _refusals() -> float:
    return REGISTRY.get_sample_value("edge_archive_deletes_refused_total", {"reason": "other_retention_policy"}) or 0.0


@pytest.mark.parametrize(
    ("sink_policy", "other_policy", "configured"),
    [
        ("autogen", "ds", None),  # the sink writes the default; ds holds a downsampled copy
        ("ds", "autogen", "ds"),  # the sink writes a configured policy; the default holds other points
    ],
)
def test_delete_refused_while_another_policy_holds_the_window(two_policies, tmp_path, sink_policy, other_policy, configured):
    db = two_policies
    _write(db, sink_policy, _raw_lines(DAY1) + _raw_lines(DAY2))
    _write(db, other_policy, _ds_lines(DAY1))  # only day 1 has points in the other policy
    before = _refusals()

    summary = archive(_settings(db, tmp_path, configured), START, END, delete=True, progress=False)

    # What the sink wrote was archived, value for value (not the other policy's points).
    assert (summary.windows, summary.exported, summary.failed) == (2, 2, 0), summary.failures
    rows = _archived_rows(tmp_path, "field1")
    assert sorted(r["v"] for r in rows) == sorted([i + 0.5 for i in range(24)] * 2)
    assert all(r.get("mean_v") is None for r in rows)
    # Day 1: the DELETE would also remove the other policy's 2 points: refused.
    assert summary.refused == 1 and summary.deleted == 1
    assert f'retention policy "{other_policy}" holds 2 values' in summary.refusals[0]
    assert _refusals() == before + 1
    assert _count(db, sink_policy, DAY1) == 24 and _count(db, other_policy, DAY1) == 2
    # Day 2 held points only in the sink's policy: archived and deleted.
    assert _count(db, sink_policy, DAY2) == 0

    # A second run refuses again (nothing is lost waiting for the operator).
    again = archive(_settings(db, tmp_path, configured), START, END, delete=True, progress=False)
    assert (again.refused, again.deleted, again.exported) == (1, 0, 0)
    assert _count(db, other_policy, DAY1) == 2


@pytest.mark.parametrize(("sink_policy", "configured"), [("autogen", None), ("ds", "ds")])
def test_all_policies_archives_each_in_its_own_table_then_deletes(two_policies, tmp_path, sink_policy, configured):
    db = two_policies
    other = "ds" if sink_policy == "autogen" else "autogen"
    _write(db, sink_policy, _raw_lines(DAY1))
    _write(db, other, _ds_lines(DAY1))

    summary = archive(_settings(db, tmp_path, configured), START, END, delete=True, all_policies=True, progress=False)

    assert (summary.windows, summary.exported, summary.deleted, summary.refused, summary.failed) == (2, 2, 2, 0, 0)
    assert sorted(r["v"] for r in _archived_rows(tmp_path, "field1")) == [i + 0.5 for i in range(24)]
    assert sorted(r["mean_v"] for r in _archived_rows(tmp_path, f"field1__{other}")) == [6.0, 7.0]
    assert _count(db, sink_policy) == 0 and _count(db, other) == 0
    manifest = (tmp_path / "archive" / f"field1__{other}" / f"site_id={SITE}" / "date=2023-07-01" / "_manifest.json")
    assert f'"retention_policy": "{other}"' in manifest.read_text()


def test_dry_run_says_which_deletes_would_be_refused(two_policies, tmp_path):
    db = two_policies
    _write(db, "autogen", _raw_lines(DAY1) + _raw_lines(DAY2))
    _write(db, "ds", _ds_lines(DAY1))
    import io

    out = io.StringIO()
    archive(_settings(db, tmp_path), START, END, delete=True, dry_run=True, out=out, progress=False)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert 'delete refused: retention policy "ds" holds 2 values' in lines[0] and "2023-07-01" in lines[0]
    assert lines[1].endswith("then delete") and "2023-07-02" in lines[1]
    assert _count(db, "autogen") == 48  # a dry run changes nothing


def _cli_args(*argv: str):
    return build_parser("archive").parse_args(["archive", *argv])


@pytest.fixture
def archive_env(monkeypatch, tmp_path, names):
    monkeypatch.setenv("EDGE_CONFIG", "")
    monkeypatch.setenv("EDGE_INFLUXDB__DATABASE", names["database"])
    monkeypatch.setenv("EDGE_ARCHIVE__DIRECTORY", str(tmp_path / "archive"))
    monkeypatch.setenv("EDGE_LOG__FORMAT", "json")
    for key in [k for k in os.environ if k.startswith("EDGE_") and k.split("__")[0] in ("EDGE_S3", "EDGE_METRICS")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("EDGE_METRICS__PORT", "0")  # any free port: runs in parallel never collide


def test_cli_refusal_raises_refused_error_after_the_summary(two_policies, archive_env, capsys):
    db = two_policies
    _write(db, "autogen", _raw_lines(DAY1))
    _write(db, "ds", _ds_lines(DAY1))
    with pytest.raises(RefusedError) as caught:
        archive_command.run(_cli_args("--start", "2023-07-01", "--end", "2023-07-02", "--delete"))
    assert caught.value.exit_code == 6
    captured = capsys.readouterr()
    assert "refused=1" in captured.out and "deleted=0" in captured.out
    assert 'retention policy "ds" holds 2 values' in captured.err
    assert '"event": "delete_refused"' in captured.err
    assert _count(db, "autogen") == 24 and _count(db, "ds") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep", "--delete"], "contradict"),
        (["--start", "2023-07-03", "--end", "2023-07-01"], "is not before --end"),
        (["--older-than", "-3"], "cannot be negative"),
        (["--older-than", "1", "--start", "2023-07-01"], "exclusive"),
        (["--start", "2023-07-01T01:00", "--end", "2023-07-01T23:00"], "no whole day"),
    ],
)
def test_contradictory_or_empty_options_are_usage_errors(archive_env, argv, message):
    with pytest.raises(UsageError, match=message) as caught:
        archive_command.run(_cli_args(*argv))
    assert caught.value.exit_code == 2


def test_missing_database_policy_or_measurement_is_not_found(two_policies, tmp_path, names):
    db = two_policies
    _write(db, "autogen", _raw_lines(DAY1))
    window = dict(start=START, end=END, progress=False)
    with pytest.raises(NotFoundError, match=f'database not found: {names["database"]}x'):
        archive(_settings(db + "x", tmp_path), **window)
    with pytest.raises(NotFoundError, match='retention policy "nosuch"'):
        archive(_settings(db, tmp_path, "nosuch"), **window)
    with pytest.raises(NotFoundError, match="measurement nosuch not found") as caught:
        archive(_settings(db, tmp_path), measurements=["nosuch"], **window)
    assert caught.value.exit_code == 5
    assert _count(db, "autogen") == 24


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("dry_run", [True, False])
def test_influxdb_unreachable_is_unreachable_error(tmp_path, dry_run):
    settings = _settings("microgrid", tmp_path)
    settings.influxdb.url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(UnreachableError, match=f"influxdb: cannot reach {settings.influxdb.url}") as caught:
        archive(settings, START, END, dry_run=dry_run, progress=False)
    assert caught.value.exit_code == 4


def test_only_complete_days_unless_today_is_asked_for(two_policies, tmp_path):
    db = two_policies
    _write(db, "autogen", _raw_lines(DAY1) + _raw_lines(DAY2))
    settings = _settings(db, tmp_path)
    # 00:30 on day 3: day 2 ended 30 minutes ago, under the 60 settle minutes.
    early = datetime(2023, 7, 3, 0, 30, tzinfo=UTC)
    first = archive(settings, older_than_days=0, delete=True, now=early, progress=False)
    assert (first.windows, first.deleted) == (1, 1)
    assert _count(db, "autogen", DAY1) == 0 and _count(db, "autogen", DAY2) == 24
    # Noon on day 2: day 2 is today; only the explicit flag archives (and deletes) it.
    noon = datetime(2023, 7, 2, 12, tzinfo=UTC)
    assert archive(settings, older_than_days=0, delete=True, now=noon, progress=False).windows == 0
    today = archive(settings, older_than_days=0, delete=True, include_today=True, now=noon, progress=False)
    assert (today.windows, today.exported, today.deleted) == (1, 1, 1)
    assert _count(db, "autogen") == 0
    assert len(_archived_rows(tmp_path, "field1")) == 48


def test_the_demos_call_archives_what_was_just_written(two_policies, tmp_path):
    """devtools/demo.py archives right after ingesting: points of now, age 0."""
    db = two_policies
    now_ns = time.time_ns() // 10**9 * 10**9
    _write(db, "autogen", [f"field1,device=Battery,site_id={SITE} v={i}.5 {now_ns - i * 10**9}" for i in range(30)])
    settings = _settings(db, tmp_path)
    # Age 0 alone stops at the last complete day: nothing of today.
    assert archive(settings, older_than_days=0, delete=True, progress=False).windows == 0
    assert _count(db, "autogen") == 30
    # The demo's documented call: today included, archived, verified, deleted.
    done = archive(settings, older_than_days=0, include_today=True, delete=True, progress=False)
    assert (done.exported, done.failed, done.rows) == (done.windows, 0, 30)
    assert _count(db, "autogen") == 0
