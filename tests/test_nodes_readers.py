"""The readers with several InfluxDB nodes (issue 22, item 3), against real influxd
processes (``influx_nodes``: the default node and node 2 here): ``edge restore``
writes each site to its node of the site map, or every point to ``--into-node``;
the archive reads, counts and deletes each site on its own node, lists what there
is from every node, and reports a schema that differs between nodes."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from edge.archive.archiver import archive
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings
from edge.ops.restore import restore
from tests.support import influx
from tests.support.processes import ROOT

M = "field6"
DAY1 = 1_717_200_000  # 2024-06-01 00:00Z
SITES = {"000001": "default", "000002": "node2", "north-1": "node2", "000003": "default"}
POINTS = 120  # per site, over two days


def _lines(sites=SITES, extra: str = "") -> dict[str, list[str]]:
    """Site -> its lines: floats, integers, booleans, strings, over 2024-06-01 and 02."""
    out = {}
    for k, site in enumerate(sites):
        out[site] = [
            f"{M},device=d{i % 3},site_id={site} power={i * 1.5 + k},count={i}i,run={'true' if i % 2 else 'false'},"
            f'note="n{i}"{extra} {(DAY1 + i * 1440) * 10**9 + k * 1000}'
            for i in range(POINTS)
        ]
    return out


def _write(url: str, db: str, lines: list[str]) -> None:
    influx.execute(url, f'CREATE DATABASE "{db}"')
    body = "\n".join(lines).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/write?db={db}&precision=ns", data=body), timeout=30)


def _count(url: str, db: str, site: str | None = None, day: str | None = None) -> int:
    """Points of ``M`` on the node (of a site, of a day)."""
    where = [f"site_id = '{site}'"] if site else []
    if day:
        where.append(f"time >= '{day}T00:00:00Z' AND time < '{day}T00:00:00Z' + 1d")
    q = f'SELECT count("power") FROM "{M}"' + (f" WHERE {' AND '.join(where)}" if where else "")
    try:
        return sum(v[1] for s in influx.query(url, db, q) for v in s["values"])
    except AssertionError as exc:
        if "database not found" in str(exc):
            return 0
        raise


def _sites_on(url: str, db: str) -> set[str]:
    try:
        series = influx.query(url, db, f'SHOW TAG VALUES FROM "{M}" WITH KEY = "site_id"')
    except AssertionError as exc:
        if "database not found" in str(exc):
            return set()
        raise
    return {v[1] for s in series for v in s["values"]}


def _map(first, second, db: str, **archive_options) -> ArchiveSettings:
    influxdb = InfluxSettings(url=first.url, database=db, site_map_version=1,
                              nodes={"node2": {"url": second.url, "sites": ["000002", "north-*"]}})
    return ArchiveSettings(influxdb=influxdb, archive=ArchiveOptions(**archive_options))


@pytest.fixture
def two_nodes(influx_nodes, names):
    """The default node and node 2, each holding its sites of ``SITES`` in a
    database of this test's own; dropped from both afterwards."""
    first, second, _third = influx_nodes
    db = names["database"]
    lines = _lines()
    urls = {"default": first.url, "node2": second.url}
    for node, url in urls.items():
        _write(url, db, [line for site, ls in lines.items() if SITES[site] == node for line in ls])
    yield first, second, db
    for url in urls.values():
        for name in (db, db + "_restored", db + "_moved"):
            influx.execute(url, f'DROP DATABASE "{name}"')


# ------------------------------------------------------------------ restore


def test_restore_puts_each_site_on_its_node_or_all_on_the_named_one(two_nodes, tmp_path, edge_env):
    first, second, db = two_nodes
    settings = _map(first, second, db, directory=str(tmp_path / "archive"))
    for node in (first, second):  # each node archived on its own, into one archive
        alone = settings.model_copy(update={"influxdb": InfluxSettings(url=node.url, database=db)})
        done = archive(alone, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC), keep=True)
        assert done.failed == 0 and done.exported == 4  # two sites x two days

    into = db + "_restored"
    summary = restore(settings, [M], datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC), into)
    assert summary.points == 4 * POINTS
    assert dict(summary.points_by_node) == {"default": 2 * POINTS, "node2": 2 * POINTS}
    assert "into " + into + " on nodes default (240 points), node2 (240 points):" in summary.line()
    assert _sites_on(first.url, into) == {"000001", "000003"}
    assert _sites_on(second.url, into) == {"000002", "north-1"}
    for site, node in SITES.items():
        url = first.url if node == "default" else second.url
        original = influx.query(url, db, f"SELECT * FROM \"{M}\" WHERE site_id = '{site}'")
        assert influx.query(url, into, f"SELECT * FROM \"{M}\" WHERE site_id = '{site}'") == original

    # --into-node: every point of the sites asked for on that node (the CLI, as an operator moves a site).
    moved = db + "_moved"
    env = dict(edge_env, EDGE_CONFIG="", EDGE_INFLUXDB__DATABASE=db, EDGE_INFLUXDB__URL=first.url,
               EDGE_INFLUXDB__SITE_MAP_VERSION="1",
               EDGE_INFLUXDB__NODES=f'{{"node2": {{"url": "{second.url}", "sites": ["000002", "north-*"]}}}}',
               EDGE_ARCHIVE__DIRECTORY=str(tmp_path / "archive"))
    cli = subprocess.run(
        [sys.executable, "-m", "edge.cli", "restore", "--site", "000001", "--site", "000002", "--start", "2024-06-01",
         "--end", "2024-06-03", "--into", moved, "--into-node", "node2"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "into " + moved + " on node node2 (240 points):" in cli.stdout
    assert _sites_on(second.url, moved) == {"000001", "000002"} and _count(second.url, moved) == 2 * POINTS
    assert _count(first.url, moved) == 0  # nothing on the default node, not even the database

    cli = subprocess.run(
        [sys.executable, "-m", "edge.cli", "restore", "--start", "2024-06-01", "--end", "2024-06-03",
         "--into", moved, "--into-node", "node9"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert cli.returncode != 0 and "--into-node node9: no InfluxDB node of that name (nodes: default, node2)" \
        in cli.stderr
    helped = subprocess.run([sys.executable, "-m", "edge.cli", "restore", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert "moving a site" in " ".join(helped.stdout.split())


# ------------------------------------------------------------------ archive

DAY = "2024-06-01"
COLUMNS = ("time", "device", "power", "count", "run", "note")


def _originals(url: str, db: str, site: str) -> list[tuple]:
    series = influx.query(url, db, f"SELECT {', '.join(COLUMNS[1:])} FROM \"{M}\" WHERE site_id = '{site}' "
                                   f"AND time >= '{DAY}T00:00:00Z' AND time < '{DAY}T00:00:00Z' + 1d", epoch="u")
    return sorted(tuple(v) for s in series for v in s["values"])


def _parquet(root, site: str) -> list[tuple]:
    files = sorted((root / M / f"site_id={site}" / f"date={DAY}").glob("*.parquet"))
    assert len(files) == 1, files
    table = pq.read_table(files[-1])
    times = [t.timestamp() * 10**6 for t in table.column("time").to_pylist()]
    rest = [table.column(c).to_pylist() for c in COLUMNS[1:]]
    return sorted((int(t), *values) for t, *values in zip(times, *rest))


def test_a_day_is_read_from_each_sites_node_and_deleted_only_there(two_nodes, tmp_path):
    first, second, db = two_nodes
    url = {"default": first.url, "node2": second.url}
    # A copy of 000002's day on the default node: what a move leaves on the old node.
    _write(first.url, db, [line for line in _lines()["000002"] if int(line.rsplit(" ", 1)[1]) < (DAY1 + 86_400) * 10**9])
    stray_before = _count(first.url, db, "000002", DAY)
    assert stray_before == POINTS // 2
    originals = {site: _originals(url[node], db, site) for site, node in SITES.items()}
    before = {(site, node): _count(u, db, site) for site in SITES for node, u in url.items()}

    root = tmp_path / "archive"
    settings = _map(first, second, db, directory=str(root))
    done = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), delete=True)
    assert (done.failed, done.windows, done.exported, done.deleted) == (0, 4, 4, 4)
    assert done.values == 4 * (POINTS // 2) * 4  # merged over both nodes: four fields a point
    assert done.misplaced_sites == 1 and "misplaced_sites=1" in done.line()

    for site in SITES:  # every value, read back from the Parquet
        assert _parquet(root, site) == originals[site] and len(originals[site]) == POINTS // 2
    for site, node in SITES.items():  # the day left each site's node; nothing else moved
        assert _count(url[node], db, site, DAY) == 0
        assert _count(url[node], db, site) == before[(site, node)] - POINTS // 2
    assert _count(first.url, db, "000002", DAY) == stray_before  # not the site's node: untouched
    assert _count(second.url, db, "000001") == before[("000001", "node2")] == 0

    # The copy on the old node: archived from there with --node, --site; only it goes.
    again = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), delete=True,
                    node="default", sites=["000002"])
    assert (again.failed, again.windows, again.deleted) == (0, 1, 1) and again.misplaced_sites == 0
    assert _count(first.url, db, "000002") == 0
    assert _count(first.url, db, "000001") == before[("000001", "default")] - POINTS // 2
    assert _count(second.url, db, "000002") == before[("000002", "node2")] - POINTS // 2
    assert _parquet(root, "000002") == originals["000002"]  # the same points: merged, once each


def test_schema_that_differs_between_nodes_is_merged_and_reported(two_nodes, tmp_path):
    """node2's ``power`` is an integer and it has a tag more; a retention policy
    only on the default node: each is reported, and the table is still archived,
    the column typed as for shards of one node that disagree (double)."""
    first, second, db = two_nodes
    other = "field9"
    _write(first.url, db, [f"{other},site_id=000001 power={i}.5 {(DAY1 + i) * 10**9}" for i in range(10)])
    _write(second.url, db, [f"{other},phase=a,site_id=000002 power={i}i {(DAY1 + i) * 10**9}" for i in range(10)])
    influx.execute(first.url, f'CREATE RETENTION POLICY "week" ON "{db}" DURATION 7d REPLICATION 1')
    settings = _map(first, second, db, directory=str(tmp_path / "archive"))

    import structlog

    with structlog.testing.capture_logs() as events:
        done = archive(settings, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), keep=True,
                       measurements=[other], log=structlog.get_logger())
    assert done.failed == 0 and done.exported == 2 and done.values == 20
    differs = {e["what"]: e["nodes"] for e in events if e["event"] == "influx_schema_differs"}
    assert differs == {
        f'retention policies of "{db}"': {"default": "autogen (default), week", "node2": "autogen (default)"},
        f'field keys of "{db}"."autogen"."{other}"': {"default": "power float", "node2": "power integer"},
        f'tag keys of "{db}"."autogen"."{other}"': {"default": "site_id", "node2": "phase, site_id"},
    }
    assert all(e["log_level"] == "warning" for e in events if e["event"] == "influx_schema_differs")
    assert done.schema_differences == 3 and "schema_differences=3" in done.line()
    from edge.archive import metrics

    assert metrics.SCHEMA_DIFFERENCES._value.get() == 3
    table = pq.read_table(next((tmp_path / "archive" / other / "site_id=000002").rglob("*.parquet")))
    assert table.column("power").type == "double" and table.column("power").to_pylist() == [float(i) for i in range(10)]
    assert table.column("phase").to_pylist() == ["a"] * 10


def test_moving_a_site_between_nodes_as_docs_scaling_says(two_nodes, tmp_path):
    """docs/scaling.md, "Moving a site between nodes": 000003 from the default node
    to node2, on 2024-06-02 at noon (the day before is complete, that day is not)."""
    first, second, db = two_nodes
    site, day1 = "000003", "2024-06-01"
    root = tmp_path / "archive"
    old = _map(first, second, db, directory=str(root))
    new = old.model_copy(update={"influxdb": InfluxSettings(
        url=first.url, database=db, site_map_version=2,
        nodes={"node2": {"url": second.url, "sites": ["000002", "north-*", site]}})})
    noon = datetime(2024, 6, 2, 12, tzinfo=UTC)
    on_old = _count(first.url, db, site)
    assert on_old == POINTS and _count(second.url, db, site) == 0

    # 1. Its complete days archived, kept on the old node.
    step1 = archive(old, older_than_days=0, sites=[site], keep=True, now=noon)
    assert (step1.failed, step1.exported, step1.deleted) == (0, 1, 0)
    # 2. Restored into the live database on the new node.
    step2 = restore(old, None, datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 2, tzinfo=UTC), db,
                    sites={site}, into_live=True, into_node="node2")
    assert dict(step2.points_by_node) == {"node2": POINTS // 2}
    # 3. The map changes; the sink writes the site's new points to node2 (here, by hand).
    after = [f"{M},device=d0,site_id={site} power=1.25,count=1i,run=true,note=\"after\" "
             f"{(DAY1 + 86_400 + 50_000 + i) * 10**9}" for i in range(7)]
    _write(second.url, db, after)
    assert archive(new, older_than_days=0, sites=[site], keep=True, now=noon, dry_run=True).misplaced_sites == 1
    # 4. The day of the switch complete: archived and deleted from the old node.
    next_day = datetime(2024, 6, 3, 1, tzinfo=UTC)
    step4 = archive(new, older_than_days=0, sites=[site], delete=True, node="default", now=next_day)
    assert (step4.failed, step4.windows, step4.exported, step4.deleted) == (0, 2, 1, 2)
    assert _count(first.url, db, site) == 0  # nothing of it left on the old node
    assert _count(second.url, db, site) == POINTS // 2 + len(after)  # the new node: untouched by that
    assert _count(first.url, db, "000001") == POINTS  # the old node's other sites: untouched
    # The regular run: the switch day's new points join the part exported from the old node.
    regular = archive(new, datetime(2024, 6, 2, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC), sites=[site],
                      delete=True, now=next_day)
    assert (regular.failed, regular.consolidated, regular.misplaced_sites) == (0, 1, 0)
    files = sorted((root / M / f"site_id={site}" / "date=2024-06-02").glob("*.parquet"))
    assert pq.read_table(files[-1]).num_rows == POINTS // 2 + len(after)
    assert _count(second.url, db, site, day1) == POINTS // 2  # the restored day stays on the new node
