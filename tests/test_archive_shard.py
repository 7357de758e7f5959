"""A fleet: two archivers at once, ``--shard 1/2`` and ``--shard 2/2``, against the
real InfluxDB. Every window is exported, verified and deleted once, by the
archiver its site's hash names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import requests

from edge.archive import windows
from edge.archive.shard import shard_of
from edge.config.settings import InfluxSettings
from edge.query.local import run_local_sql

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFLUX = InfluxSettings().url
SITES = [f"{i:06d}" for i in range(1, 13)]
DAYS = [date(2024, 3, 1), date(2024, 3, 2)]


def test_two_sharded_archivers_at_once_do_every_window_once(local_services, names, edge_env, tmp_path):
    db = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    try:
        lines = [
            f"field1,site_id={site} v={i}.5 {windows.day_start_ns(day) + i * 60 * 10**9}"
            for site in SITES for day in DAYS for i in range(50)
        ]
        requests.post(f"{INFLUX}/write", params={"db": db}, data="\n".join(lines)).raise_for_status()
        env = {**os.environ, **edge_env, "PYTHONPATH": ROOT}
        argv = [sys.executable, "-m", "edge.cli", "archive", "--start", "2024-03-01", "--end", "2024-03-03", "--delete"]
        runs = [subprocess.Popen(argv + ["--shard", f"{i}/2"], env=env, cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (1, 2)]
        outputs = [r.communicate(timeout=180) for r in runs]
        for run, (out, err) in zip(runs, outputs):
            assert run.returncode == 0, out + err
        exported: list[list[str]] = []
        for out, err in outputs:
            events = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
            exported.append([e["window"] for e in events if e.get("event") == "window" and e["outcome"] == "exported"])
        every = sorted(f"field1 site_id={s} {d.isoformat()} rp=autogen" for s in SITES for d in DAYS)
        assert sorted(exported[0] + exported[1]) == every  # every window once, none twice
        for index, done in enumerate(exported, start=1):
            assert done and all(shard_of(w.split()[1].removeprefix("site_id="), 2) == index for w in done)
        assert all("exported=" in out and "failed=0" in out for out, _ in outputs)
        # One part per window, and InfluxDB holds none of it any more.
        archive_dir = edge_env["EDGE_ARCHIVE__DIRECTORY"]
        assert run_local_sql("SELECT count(*) AS n, count(DISTINCT site_id) AS s FROM field1", archive_dir) == "n,s\n1200,12\n"
        for site in SITES:
            for day in DAYS:
                folder = os.path.join(archive_dir, "field1", f"site_id={site}", f"date={day.isoformat()}")
                assert sorted(os.listdir(folder)) == ["_manifest.json", "part-00000.parquet"]
        left = requests.get(f"{INFLUX}/query", params={"db": db, "q": "SELECT count(v) FROM field1"}).json()
        assert "series" not in left["results"][0]
    finally:
        requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{db}"'})


def test_a_malformed_shard_is_refused_before_anything_is_read(edge_env):
    env = {**os.environ, **edge_env, "PYTHONPATH": ROOT}
    for bad in ("3/2", "0/2", "half"):
        done = subprocess.run([sys.executable, "-m", "edge.cli", "archive", "--shard", bad, "--dry-run"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "--shard" in done.stderr, done.stderr
