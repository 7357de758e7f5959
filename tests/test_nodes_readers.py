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
