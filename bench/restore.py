"""``edge restore`` throughput: real pilot telemetry archived, then restored.

    .venv/bin/python -m bench.restore [--rows N]

Loads ``bench/data/field6-evcharger-service1.parquet`` into its own InfluxDB
database (bench.archive's loader), archives every day to a temporary local
archive (``--keep``), restores all of it into a second database, and prints field
values restored per second (read Parquet, encode line protocol, write, every
request answered 2xx), then checks the restored database's value count equals the
original's. Needs the local InfluxDB (``make services-up``). Both databases are
dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime

import requests

from bench import archive as bench_archive
from bench.harness import quiet_log
from edge.archive.archiver import archive
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings
from edge.ops.restore import restore

START, END = datetime(2023, 6, 29, tzinfo=UTC), datetime(2023, 7, 6, tzinfo=UTC)


def count_values(url: str, db: str) -> int:
    r = requests.get(f"{url}/query", params={"db": db, "q": 'SELECT count(*) FROM "field6"'})
    r.raise_for_status()
    series = r.json()["results"][0].get("series", [])
    return sum(v for s in series for row in s["values"] for v in row[1:] if v)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="load only the file's first N rows (default: all)")
    args = ap.parse_args()
    log = quiet_log(40)
    url = InfluxSettings().url
    live, into = f"bench_restore_{os.getpid()}", f"bench_restore_{os.getpid()}_into"
    try:
        t0 = time.perf_counter()
        loaded = bench_archive.load(live, args.rows)
        print(f"loaded {loaded:,} field values into {live} in {time.perf_counter() - t0:.1f}s")
        with tempfile.TemporaryDirectory(prefix="bench-restore-") as directory:
            settings = ArchiveSettings(influxdb=InfluxSettings(database=live),
                                       archive=ArchiveOptions(directory=directory), s3=S3Settings(bucket=None))
            done = archive(settings, START, END, keep=True, progress=False, log=log)
            assert done.failed == 0, done.failures
            print(f"archived {done.values:,} values in {done.exported} day files")
            summary = restore(settings, ["field6"], START, END, into, log=log)
        restored = count_values(url, into)
        print(f"restore: {summary.points:,} points, {summary.values:,} values in {summary.seconds:.2f}s"
              f" = {summary.values_per_s:,.0f} values/s ({summary.points / summary.seconds:,.0f} points/s,"
              f" {summary.requests} requests)")
        same = restored == count_values(url, live) == summary.values
        print(f"read back: {restored:,} values in {into} ({'equal to' if same else 'DIFFERENT from'} the original)")
        return 0 if same else 1
    finally:
        for db in (live, into):
            requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'})


if __name__ == "__main__":
    sys.exit(main())
