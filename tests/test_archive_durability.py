"""Durable before delete: the archive file and the directory entries leading to it
reach the disk before the part is verified, and the verification reads the disk.

The system calls are observed (``os.fsync``, ``os.replace``, ``os.posix_fadvise``
wrapped to record what they were called on, then called for real) while a real
archive run exports from the real InfluxDB: a power cut after the DELETE must find
the file under its final name with its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests

from edge.archive import windows
from edge.archive.archiver import archive
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings, S3Settings

INFLUX = InfluxSettings().url
DAY = date(2023, 7, 1)
START, END = datetime(2023, 7, 1, tzinfo=UTC), datetime(2023, 7, 2, tzinfo=UTC)


@pytest.fixture
def influx_db(local_services, names):
    db = names["database"]
    requests.post(f"{INFLUX}/query", params={"q": f'CREATE DATABASE "{db}"'}, timeout=30).raise_for_status()
    base = windows.day_start_ns(DAY)
    for site in ("000001", "000002"):
        body = "\n".join(f"field1,device=Battery,site_id={site} v={i}.25 {base + i * 60 * 10**9}" for i in range(300))
        assert requests.post(f"{INFLUX}/write", params={"db": db}, data=body, timeout=30).status_code == 204
    yield db
    requests.post(f"{INFLUX}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=30)


def _settings(db: str, tmp_path) -> ArchiveSettings:
    return ArchiveSettings(
        influxdb=InfluxSettings(database=db),
        archive=ArchiveOptions(directory=str(tmp_path / "archive"), chunk_rows=50),
        s3=S3Settings(bucket=None),
    )


class SyscallLog:
    def __init__(self, monkeypatch):
        self.events: list[tuple[str, str]] = []
        real_fsync, real_replace, real_fadvise = os.fsync, os.replace, os.posix_fadvise

        def fsync(fd):
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            return real_fsync(fd)

        def replace(src, dst, *args, **kwargs):
            self.events.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
            return real_replace(src, dst, *args, **kwargs)

        def fadvise(fd, offset, length, advice):
            if advice == os.POSIX_FADV_DONTNEED:
                self.events.append(("drop_cache", os.readlink(f"/proc/self/fd/{fd}")))
            return real_fadvise(fd, offset, length, advice)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "posix_fadvise", fadvise)

    def index(self, kind: str, what: str) -> int:
        for i, event in enumerate(self.events):
            if event == (kind, what):
                return i
        raise AssertionError(f"no {kind} of {what} in {self.events}")


def test_file_and_directories_are_synced_before_the_part_is_verified(influx_db, tmp_path, monkeypatch):
    calls = SyscallLog(monkeypatch)
    # One worker: the system calls are observed in this process (a pool's workers
    # run the same code: tests/test_archive_pool.py).
    summary = archive(_settings(influx_db, tmp_path), START, END, delete=True, progress=False, workers=1)
    assert (summary.exported, summary.deleted, summary.failed) == (2, 2, 0), summary.failures

    root = (tmp_path / "archive").resolve()
    day_dir = root / "field1" / "site_id=000001" / "date=2023-07-01"
    part, tmp = day_dir / "part-00000.parquet", day_dir / ".part-00000.parquet.tmp"
    # The data reaches the disk, then the rename, then the rename itself is synced.
    written = calls.index("fsync", str(tmp))
    renamed = calls.index("replace", f"{tmp} -> {part}")
    dir_synced = calls.index("fsync", str(day_dir))
    assert written < renamed < dir_synced
    # Every directory the run created is an entry in a synced parent.
    for created in (root / "field1", root / "field1" / "site_id=000001", day_dir):
        assert calls.index("fsync", str(created.parent)) < renamed
    # The part is described from the disk (cached pages dropped), before the
    # manifest says it is archived, and long before the DELETE.
    dropped = calls.index("drop_cache", str(part))
    manifest_written = calls.index("replace", f"{day_dir / '._manifest.json.tmp'} -> {day_dir / '_manifest.json'}")
    assert dir_synced < dropped < manifest_written
    manifest = json.loads((day_dir / "_manifest.json").read_text())
    (record,) = manifest["parts"]
    assert record["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
    assert record["field_counts"] == {"v": 300} and record["deleted"] is True


def test_a_part_corrupted_on_disk_is_exported_again(influx_db, tmp_path):
    settings = _settings(influx_db, tmp_path)
    first = archive(settings, START, END, keep=True, progress=False)
    assert (first.exported, first.failed) == (2, 0)
    part = Path(settings.archive.directory) / "field1" / "site_id=000002" / "date=2023-07-01" / "part-00000.parquet"
    good = part.read_bytes()
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF  # same size, one flipped byte
    part.write_bytes(bytes(corrupt))

    again = archive(settings, START, END, keep=True, progress=False)
    # The intact window is skipped, the corrupted one exported again: same bytes.
    assert (again.exported, again.skipped, again.failed) == (1, 1, 0)
    assert part.read_bytes() == good


def _write(db: str, site: str, minute: int) -> None:
    body = f"field1,device=Battery,site_id={site} v={minute}.5 {windows.day_start_ns(DAY) + minute * 60 * 10**9}"
    assert requests.post(f"{INFLUX}/write", params={"db": db}, data=body, timeout=30).status_code == 204


def test_a_new_window_is_counted_once_while_it_exports_and_a_count_the_file_misses_fails_it(
        influx_db, tmp_path, monkeypatch):
    """The plan counts nothing; a window without parts is counted once, on another
    thread while it exports; a point InfluxDB's count sees and the export did not
    fails the window (counted again after the export: still more), and the next
    run archives it."""
    import threading

    from edge.archive import window_work
    from edge.archive.export import InfluxArchiveSource
    from edge.archive.parquet_file import WrittenPart

    counted: list[tuple[str, bool]] = []
    exported = threading.Event()
    real_counts, real_write = InfluxArchiveSource.window_counts, window_work.write_window

    def window_counts(self, window, policy=None):
        on_main = threading.current_thread() is threading.main_thread()
        counted.append((window.site_id, on_main))
        if window.site_id == "000003" and not on_main:
            assert exported.wait(30)  # counted after the export read its points
        return real_counts(self, window, policy)

    def write_then_more(source, window, *args, **kwargs) -> WrittenPart:
        part = real_write(source, window, *args, **kwargs)
        if window.site_id == "000003":
            _write(influx_db, window.site_id, 1001)  # after the export, before its count
            exported.set()
        return part

    monkeypatch.setattr(InfluxArchiveSource, "window_counts", window_counts)
    monkeypatch.setattr(window_work, "write_window", write_then_more)
    summary = archive(_settings(influx_db, tmp_path), START, END, keep=True, progress=False, workers=1)
    assert (summary.exported, summary.failed, summary.values) == (2, 0, 600), summary.failures
    assert sorted(counted) == [("000001", False), ("000002", False)]

    _write(influx_db, "000003", 5)  # a new window
    counted.clear()
    again = archive(_settings(influx_db, tmp_path), START, END, keep=True, progress=False, workers=1)
    assert (again.exported, again.unchanged + again.skipped, again.failed) == (0, 2, 1), again.failures
    assert "site_id=000003" in str(again.failures) and "counts changed during export" in str(again.failures)
    assert [c for c in counted if c[0] == "000003"] == [("000003", False), ("000003", True)]

    monkeypatch.setattr(window_work, "write_window", real_write)
    last = archive(_settings(influx_db, tmp_path), START, END, keep=True, progress=False, workers=1)
    assert (last.exported, last.failed, last.values) == (1, 0, 2), last.failures
