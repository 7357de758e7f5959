"""Points for a day that already has archived parts: one consolidated part.

When InfluxDB holds points for a window whose manifest lists parts that cannot
simply be replaced (sealed ones, whose points may be gone from InfluxDB), the
archiver writes one new part holding the listed parts and InfluxDB's points now,
merged by InfluxDB's rule (``edge.archive.merge``), so SQL over the day sees each
(series, time) once, with InfluxDB's values. The steps, each a place where a
kill -9 leaves a day that reads correctly:

1. ``exported``: InfluxDB's points of the window into a local staging file
   (``.incoming-NNNNN.parquet-new``: no reader takes it), counted against InfluxDB;
2. ``written``: the merge into ``part-NNNNN.parquet`` (a new index), described
   from the disk; its counts must equal the merge's, and hold at least every input's;
3. ``uploaded``: uploaded and verified like any part;
4. ``switched``: the manifest lists the new part alone, in one write (a rename
   on disk, one PUT on S3), naming the parts it replaced;
5. ``removed``: the replaced parts are removed from the store (and their local
   copies); the manifest then stops naming them.

Before the switch the manifest lists the old parts and the next run starts over
(the same index: a half-done new part is overwritten); after it the manifest
lists the new part and the next run finishes the removal (``finish_removal``).
The window's delete from InfluxDB comes later, in phase 2, as for any part.

``EDGE_TEST_ONLY_KILL_ARCHIVE_AT=<step>`` is a **test hook**: the process kills
itself with SIGKILL right after that step. It exists for the kill -9 tests, no
setting or option sets it, and an unknown value does nothing.
"""

from __future__ import annotations

import os
import signal

import pyarrow as pa
import pyarrow.parquet as pq

from edge.archive import manifest as manifests
from edge.archive import merge
from edge.archive.parquet_file import WindowFailed, WrittenPart, write_table, write_window
from edge.archive.store import StoreFailed, store_step
from edge.archive.summary import ArchiveSummary
from edge.archive.windows import Window

KILL_ENV = "EDGE_TEST_ONLY_KILL_ARCHIVE_AT"
STEPS = ("exported", "written", "uploaded", "switched", "removed")


def crash_point(step: str) -> None:
    """Test hook (see the module's docstring): SIGKILL this process after ``step``."""
    if step in STEPS and os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def consolidate(work, window: Window, index: int, counts: dict[str, int], manifest: dict,
                summary: ArchiveSummary) -> WrittenPart:
    """Steps 1-5 for one window (``work``: the run's ``WindowWork``); the new part."""
    fields, tags = work.types(window)
    options = work.settings.archive
    staging = work.local.path(f"{window.directory}/.incoming-{index:05d}.parquet-new")
    try:
        incoming = write_window(work.source, window, fields, tags, staging,
                                options.chunk_rows, options.zstd_level, options.row_group_rows)
        if incoming.field_counts != counts:
            raise WindowFailed(f"{window.label()}: counts changed during export")
        crash_point("exported")
        inputs = [_read_part(work.store, window, p["key"]) for p in manifest["parts"]]
        inputs.append(pq.read_table(staging))
        minimum = [(t.num_rows, merge.field_counts(t, fields)) for t in inputs]
        merged = merge.merge_points(inputs, fields)
        del inputs
        expected = (merged.num_rows, merge.field_counts(merged, fields))
        key = window.part_key(index)
        part = write_table(merged, fields, work.local.path(key), options.zstd_level, options.row_group_rows)
        del merged
    finally:
        staging.unlink(missing_ok=True)
    _check(window, part, expected, minimum)
    crash_point("written")
    record = manifests.part_record(index, key, work.store.url(key), part, source=counts)
    switched = manifests.consolidated(manifest, record)
    with store_step(window, "upload"):
        work.store.put_file(key, part.path, part.digest)
        if not work.store.verify(key, part.digest, part.path):
            raise StoreFailed(f"{window.label()}: {work.store.url(key)} failed verification")
    crash_point("uploaded")
    with store_step(window, "switch manifest"):
        work.store.put_json(window.manifest_key, switched)
    if work.store is not work.local:
        work.local.put_json(window.manifest_key, switched)
    crash_point("switched")
    work.log.info("window_consolidated", window=window.label(), part=key, rows=part.rows,
                  replaced=switched["replaced"], new_values=sum(counts.values()))
    finish_removal(work, window, switched)
    summary.consolidated += 1
    return part


def finish_removal(work, window: Window, manifest: dict) -> dict:
    """Remove the parts the manifest says were replaced, then stop naming them."""
    replaced = manifest.get("replaced", [])
    if not replaced:
        return manifest
    listed = {p["key"] for p in manifest["parts"]}
    with store_step(window, "remove replaced parts"):
        for key in replaced:
            if key not in listed:  # never the part the manifest lists
                work.store.remove(key)
                if work.store is not work.local:
                    work.local.remove(key)
        crash_point("removed")
        done = manifests.without_replaced(manifest)
        work.store.put_json(window.manifest_key, done)
    if work.store is not work.local:
        work.local.put_json(window.manifest_key, done)
    return done


def _read_part(store, window: Window, key: str) -> pa.Table:
    with store_step(window, f"read {key}"), store.open_read(key) as f:
        return pq.read_table(f)


def _check(window: Window, part, expected: tuple[int, dict[str, int]], minimum) -> None:
    """The consolidated file on disk holds what the merge made, and at least every
    input's rows and values per field (a merge never drops a (series, time) or a value)."""
    if (part.rows, part.field_counts) != expected:
        raise WindowFailed(f"{window.label()}: consolidated part holds {part.rows} rows {part.field_counts},"
                           f" the merge made {expected[0]} rows {expected[1]}")
    for rows, counts in minimum:
        if rows > part.rows or any(part.field_counts.get(f, 0) < n for f, n in counts.items()):
            raise WindowFailed(f"{window.label()}: consolidated part holds less than one of its inputs")
