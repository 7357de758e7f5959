"""Phase 1 over a pool of worker processes, against the real InfluxDB: the same
archive as one process, byte for byte, every window once, a peak RSS per worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import requests

from edge.archive import windows
from edge.archive.archiver import archive
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings

INFLUX = InfluxSettings().url
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITES = [f"{i:06d}" for i in range(1, 5)]
DAYS = [date(2024, 4, 1), date(2024, 4, 2)]


def _settings(db: str, directory: Path) -> ArchiveSettings:
    return ArchiveSettings(influxdb=InfluxSettings(database=db),
                           archive=ArchiveOptions(directory=str(directory), chunk_rows=64))


def test_a_pool_of_workers_archives_what_one_process_does(local_services, names, tmp_path):
    db = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    try:
        lines = [f"field1,site_id={s} v={i}.25,n={i}i,ok={'true' if i % 2 else 'false'} "
                 f"{windows.day_start_ns(d) + i * 10**9}" for s in SITES for d in DAYS for i in range(300)]
        requests.post(f"{INFLUX}/write", params={"db": db}, data="\n".join(lines)).raise_for_status()
        start, end = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 4, 3, tzinfo=UTC)
        one = archive(_settings(db, tmp_path / "one"), start, end, keep=True, progress=False, workers=1)
        pool = archive(_settings(db, tmp_path / "pool"), start, end, keep=True, progress=False, workers=2)
        assert (pool.exported, pool.rows, pool.values, pool.failed) == (one.exported, one.rows, one.values, 0)
        assert pool.exported == len(SITES) * len(DAYS) and pool.rows == 2400
        # Workers start on demand (a fast window may leave the second idle): at most 2.
        assert 1 <= len(pool.worker_peak_rss) <= 2 and all(0 < rss < 1e9 for rss in pool.worker_peak_rss.values())
        assert one.worker_peak_rss == {}
        for part in sorted((tmp_path / "one").rglob("*.parquet")):
            twin = tmp_path / "pool" / part.relative_to(tmp_path / "one")
            assert pq.read_table(twin).equals(pq.read_table(part))
        assert len(list((tmp_path / "pool").rglob("*.parquet"))) == 8
        # Then the delete (phase 2, in the parent) after a pooled phase 1.
        done = archive(_settings(db, tmp_path / "pool"), start, end, delete=True, progress=False, workers=2)
        assert (done.exported, done.deleted) == (0, 8)
    finally:
        requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{db}"'})


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_a_killed_archiver_and_the_next_run_finishes(local_services, names, edge_env, tmp_path):
    """A kill -9 of the archiver leaves no worker exporting a window that the next
    run would take too."""
    db = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    try:
        fields = ",".join(f"f{j}={{i}}.5" for j in range(20))
        for s in SITES:
            lines = [f"field1,site_id={s} {fields.format(i=i)} {windows.day_start_ns(DAYS[0]) + i * 10**9}"
                     for i in range(0, 86_400, 4)]
            requests.post(f"{INFLUX}/write", params={"db": db}, data="\n".join(lines)).raise_for_status()
        env = {**os.environ, **edge_env, "PYTHONPATH": ROOT}
        argv = [sys.executable, "-m", "edge.cli", "archive", "--start", "2024-04-01", "--end", "2024-04-02",
                "--keep", "--workers", "2"]
        run = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(_descendants(run.pid)) < 3 and time.monotonic() < deadline:  # the tracker and 2 workers
            time.sleep(0.05)
        workers = _descendants(run.pid)
        assert len(workers) >= 3 and run.poll() is None
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), [p for p in workers if _alive(p)]
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0 and "failed=0" in done.stdout, done.stdout + done.stderr
        archive_dir = edge_env["EDGE_ARCHIVE__DIRECTORY"]
        assert len(list(Path(archive_dir).rglob("part-*.parquet"))) == len(SITES)
    finally:
        requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{db}"'})
