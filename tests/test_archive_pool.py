"""Phase 1 over a pool of worker processes, against the real InfluxDB: the same
archive as one process, byte for byte, every window once, a peak RSS per worker."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import requests

from edge.archive import windows
from edge.archive.archiver import archive
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings

INFLUX = InfluxSettings().url
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
