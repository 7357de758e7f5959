"""``edge archive``: InfluxDB -> Parquet -> S3 (or local disk), then bounded retention.

Work is done one window (one UTC day of one measurement for one site) at a time:

1. count the window's values in InfluxDB (per field) and read its manifest;
2. export it in chunks (``SELECT *``, streamed) into
   ``<archive dir>/<measurement>/site_id=<s>/date=<d>/part-NNNNN.parquet``;
3. upload it to ``s3://<bucket>/<prefix><same key>`` with a SHA-256 checksum;
4. verify: object present, size and checksums, and the file's value counts equal
   InfluxDB's; write the manifest (rows, min/max time, checksums, columns) next to
   the data.

Then, once every window of the run is archived, and only if the store never failed
during the run (S3 down: nothing is deleted, everything is retried next run), for
each verified window: count again (points that arrived since the export stop the
delete), seal the part in the manifest, ``DELETE`` exactly that window
(``site_id`` tag and ``time >= a AND time < b``), mark it deleted.

A run killed anywhere resumes with the next run: an upload that was verified is
not repeated, a delete that did not happen is done, a half-written file is never
under its final name. Without S3 the layout is the same on local disk and nothing
is deleted unless asked (``--delete`` or ``archive.delete_without_s3``).

``archive(settings, ...)`` is the function the CLI and the demo call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import Gauge

from edge.archive import plan
from edge.archive import parquet_schema as schema
from edge.archive.store import ArchiveStore, FileDigest, LocalStore, file_digest
from edge.archive.export import InfluxArchiveSource, InfluxError
from edge.settings import ArchiveSettings

ROWS_EXPORTED = Gauge("edge_archive_rows_exported", "Rows exported to Parquet in this run")
WINDOWS_DONE = Gauge("edge_archive_windows_done", "Windows handled in this run (exported, skipped or failed)")
WINDOWS_FAILED = Gauge("edge_archive_windows_failed", "Windows that failed in this run")
LAST_SUCCESS = Gauge("edge_archive_last_success_timestamp_seconds", "Unix time the last run without a failed window ended")


@dataclass
class ArchiveSummary:
    windows: int = 0
    exported: int = 0  # windows written to Parquet in this run
    skipped: int = 0  # already archived and verified (kept in InfluxDB)
    deleted: int = 0  # windows deleted from InfluxDB in this run
    unchanged: int = 0  # nothing in InfluxDB for the window any more
    failed: int = 0
    rows: int = 0  # rows exported in this run
    values: int = 0  # field values exported in this run
    bytes: int = 0  # Parquet bytes written in this run
    objects: int = 0  # objects uploaded (or written, local store) in this run
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"windows={self.windows} exported={self.exported} skipped={self.skipped}"
            f" deleted={self.deleted} failed={self.failed} rows={self.rows}"
            f" values={self.values} bytes={self.bytes} objects={self.objects}"
            f" seconds={self.seconds:.1f}"
        )


@dataclass
class WrittenPart:
    path: Path
    digest: FileDigest
    rows: int
    field_counts: dict[str, int]
    columns: dict[str, str]
    min_time: str
    max_time: str


class WindowFailed(RuntimeError):
    pass


# ------------------------------------------------------------------ export + write


def write_window(
    source: InfluxArchiveSource,
    window: plan.Window,
    fields: dict[str, pa.DataType],
    tags: list[str],
    target: Path,
    chunk_rows: int,
    zstd_level: int,
    row_group_rows: int = 131_072,
) -> WrittenPart:
    """Stream the window from InfluxDB into ``target`` (atomically), chunk by chunk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    writer: pq.ParquetWriter | None = None
    arrow_schema: pa.Schema | None = None
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    counts: dict[str, int] = {}
    min_t = max_t = None
    try:
        for columns, values in source.export(window, chunk_rows):
            if arrow_schema is None:
                arrow_schema = schema.arrow_schema(columns, fields, tags)
                writer = pq.ParquetWriter(
                    tmp,
                    arrow_schema,
                    compression="zstd",
                    compression_level=zstd_level,
                    # Timestamps are unique and evenly spaced: delta encoding stores
                    # them in a few bits each (a dictionary would double the file).
                    use_dictionary=[n for n in arrow_schema.names if n != schema.TIME_COLUMN],
                    column_encoding={schema.TIME_COLUMN: "DELTA_BINARY_PACKED"},
                    write_statistics=True,
                    coerce_timestamps="us",
                    allow_truncated_timestamps=False,
                )
            batch = schema.record_batch(columns, values, arrow_schema)
            del values
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
                pending, pending_rows = [], 0
            rows += batch.num_rows
            for name, n in schema.non_null_counts(batch).items():
                if name in fields:
                    counts[name] = counts.get(name, 0) + n
            times = batch.column(0)
            lo, hi = times[0].value, times[-1].value
            min_t = lo if min_t is None else min(min_t, lo)
            max_t = hi if max_t is None else max(max_t, hi)
        if writer is None:
            raise WindowFailed(f"{window.label()}: InfluxDB returned no points")
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
            pending = []
        writer.close()
        writer = None
        os.replace(tmp, target)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    # What is on disk is what was counted.
    meta = pq.ParquetFile(target).metadata
    if meta.num_rows != rows:
        raise WindowFailed(f"{window.label()}: wrote {rows} rows, file holds {meta.num_rows}")
    assert arrow_schema is not None
    return WrittenPart(
        path=target,
        digest=file_digest(target),
        rows=rows,
        field_counts={k: counts.get(k, 0) for k in sorted(counts) if counts.get(k)},
        columns={f.name: str(f.type) for f in arrow_schema},
        min_time=_iso_us(min_t),
        max_time=_iso_us(max_t),
    )


def _iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def part_record(index: int, key: str, url: str, part: WrittenPart) -> dict:
    return {
        "index": index,
        "file": Path(key).name,
        "key": key,
        "url": url,
        "rows": part.rows,
        "field_counts": part.field_counts,
        "min_time": part.min_time,
        "max_time": part.max_time,
        "bytes": part.digest.size,
        "sha256": part.digest.sha256,
        "columns": part.columns,
        "time_unit": "us",
        "compression": "zstd",
        "archived_at": datetime.now(UTC).isoformat(),
        "sealed": False,
        "deleted": False,
    }


# ------------------------------------------------------------------ orchestration


class Archiver:
    def __init__(
        self,
        settings: ArchiveSettings,
        source: InfluxArchiveSource,
        store: ArchiveStore,
        local: LocalStore,
        delete: bool,
        log,
    ):
        self.settings = settings
        self.source = source
        self.store = store
        self.local = local
        self.delete = delete
        self.log = log
        self._types: dict[str, tuple[dict[str, pa.DataType], list[str]]] = {}

    def types(self, measurement: str) -> tuple[dict[str, pa.DataType], list[str]]:
        if measurement not in self._types:
            self._types[measurement] = (
                schema.field_types(self.source.field_keys(measurement)),
                self.source.tag_keys(measurement),
            )
        return self._types[measurement]

    def plan(self, start_ns: int | None, end_ns: int, measurements: list[str] | None) -> list[plan.Window]:
        windows: list[plan.Window] = []
        for m in measurements or self.source.measurements():
            first = start_ns
            if first is None:
                first = self.source.first_time_ns(m)
                if first is None:
                    continue
                first -= first % plan.NS_PER_DAY
            if first >= end_ns:
                continue
            windows += plan.windows_from_counts(m, self.source.plan_counts(m, first, end_ns))
        return windows

    def decide(self, window: plan.Window) -> tuple[plan.Decision, dict[str, int], dict | None]:
        counts = self.source.window_counts(window)
        with _store_step(window, "read manifest"):
            manifest = self.store.get_json(window.manifest_key)
            parts = (manifest or {}).get("parts", [])
            stored_ok = False
            if parts and any(counts.values()):
                last = parts[-1]
                key = window.part_key(last["index"])
                stored_ok = self.store.verify(
                    key, FileDigest(last["bytes"], last["sha256"]), self.local.path(key)
                )
        return plan.decide(manifest, counts, stored_ok, self.delete), counts, manifest

    def archive_window(self, window: plan.Window, summary: ArchiveSummary) -> int | None:
        """Export, write, upload, verify. The part index to delete next, or None."""
        decision, counts, manifest = self.decide(window)
        step = decision.step
        if step is plan.Step.NOTHING:
            summary.unchanged += 1
            return None
        if step is plan.Step.SKIP:
            summary.skipped += 1
            return None
        index = decision.part_index
        key = window.part_key(index)
        if step is plan.Step.EXPORT:
            fields, tags = self.types(window.measurement)
            part = write_window(
                self.source,
                window,
                fields,
                tags,
                self.local.path(key),
                self.settings.archive.chunk_rows,
                self.settings.archive.zstd_level,
                self.settings.archive.row_group_rows,
            )
            if part.field_counts != counts:
                # Points came or went while exporting: the next run exports again.
                raise WindowFailed(f"{window.label()}: counts changed during export")
            record = part_record(index, key, self.store.url(key), part)
            manifest = plan.with_part(manifest, window, record)
            with _store_step(window, "upload"):
                self.store.put_file(key, part.path, part.digest)
                if not self.store.verify(key, part.digest, part.path):
                    raise StoreFailed(f"{window.label()}: {self.store.url(key)} failed verification")
                self.store.put_json(window.manifest_key, manifest)
            if self.store is not self.local:
                self.local.put_json(window.manifest_key, manifest)
            summary.exported += 1
            summary.objects += 1
            summary.rows += part.rows
            summary.values += sum(part.field_counts.values())
            summary.bytes += part.digest.size
        return index if self.delete else None

    def delete_window(self, window: plan.Window, index: int, summary: ArchiveSummary) -> None:
        """Seal the verified part, DELETE exactly the window, mark it deleted."""
        with _store_step(window, "read manifest"):
            manifest = self.store.get_json(window.manifest_key)
        part = next((p for p in (manifest or {}).get("parts", []) if p["index"] == index), None)
        if part is None:
            raise WindowFailed(f"{window.label()}: manifest lost part {index}; not deleted")
        if self.source.window_counts(window) != part["field_counts"]:
            raise WindowFailed(f"{window.label()}: InfluxDB changed since export; not deleted")
        manifest = plan.marked(manifest, index, sealed=True, sealed_at=datetime.now(UTC).isoformat())
        with _store_step(window, "seal"):
            self.store.put_json(window.manifest_key, manifest)
        self.source.delete(window)
        manifest = plan.marked(manifest, index, deleted=True, deleted_at=datetime.now(UTC).isoformat())
        with _store_step(window, "mark deleted"):
            self.store.put_json(window.manifest_key, manifest)
        if self.store is not self.local:
            self.local.put_json(window.manifest_key, manifest)
        summary.deleted += 1


class StoreFailed(RuntimeError):
    """The archive store (S3) failed: the run stops and deletes nothing."""


class _store_step:
    def __init__(self, window: plan.Window, what: str):
        self.window, self.what = window, what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, StoreFailed):
            raise StoreFailed(f"{self.window.label()}: {self.what}: {type(exc).__name__}: {exc}") from exc
        return False


def _stores(settings: ArchiveSettings, store: ArchiveStore | None) -> tuple[ArchiveStore, LocalStore]:
    local = LocalStore(settings.archive.directory)
    if store is not None:
        return store, local
    if settings.s3.bucket:
        from edge.archive.s3 import S3Store

        return S3Store(settings.s3), local
    return local, local


def archive(
    settings: ArchiveSettings,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    older_than_days: float | None = None,
    keep: bool = False,
    delete: bool | None = None,
    dry_run: bool = False,
    measurements: list[str] | None = None,
    store: ArchiveStore | None = None,
    now: datetime | None = None,
    progress: bool | None = None,
    out=None,
    log=None,
    runtime=None,
) -> ArchiveSummary:
    """Archive every window in [start, end) (default: older than the configured age).

    ``delete``: None follows the settings (S3: delete after verify; local only: no
    delete unless ``archive.delete_without_s3``); ``keep`` wins over both.
    """
    import structlog

    log = log or structlog.get_logger().bind(service="archive")
    out = out or sys.stdout
    began = time.monotonic()
    target, local = _stores(settings, store)
    if delete is None:
        delete = (
            settings.archive.delete_after_verify
            if target is not local
            else settings.archive.delete_without_s3
        )
    delete = delete and not keep
    start_ns, end_ns = plan.archive_range(
        now or datetime.now(UTC),
        settings.archive.older_than_days if older_than_days is None else older_than_days,
        start,
        end,
    )
    source = InfluxArchiveSource(settings.influxdb)
    summary = ArchiveSummary()
    try:
        archiver = Archiver(settings, source, target, local, delete, log)
        windows = archiver.plan(start_ns, end_ns, measurements)
        summary.windows = len(windows)
        log.info(
            "archive planned",
            windows=len(windows),
            end=plan.day_of_ns(end_ns).isoformat(),
            store=target.name,
            delete=delete,
            dry_run=dry_run,
        )
        if dry_run:
            for w in windows:
                decision, counts, _ = archiver.decide(w)
                print(
                    f"{decision.step.value:12s} {w.label():50s} values={sum(counts.values())}"
                    f" -> {target.url(w.part_key(decision.part_index))}"
                    + (" then delete" if delete and decision.step is not plan.Step.NOTHING else ""),
                    file=out,
                )
            return summary
        show_bar = out.isatty() if progress is None else progress
        bar = _progress_bar(len(windows), show_bar)
        # Phase 1: export, upload and verify every window. A failing store stops
        # the run and skips phase 2: while S3 misbehaves nothing leaves InfluxDB.
        to_delete: list[tuple[plan.Window, int]] = []
        store_down = False
        for done, w in enumerate(windows):
            if runtime is not None:  # systemctl status shows where a long run is
                runtime.alive()
                runtime.status(f"archiving {w.label()} ({done + 1}/{len(windows)})")
            WINDOWS_DONE.set(done)
            ROWS_EXPORTED.set(summary.rows)
            WINDOWS_FAILED.set(summary.failed)
            try:
                exported, skipped = summary.exported, summary.skipped
                index = archiver.archive_window(w, summary)
                if index is not None:
                    to_delete.append((w, index))
                if not show_bar:
                    outcome = (
                        "exported" if summary.exported > exported
                        else "already archived" if summary.skipped > skipped or index is not None
                        else "nothing in InfluxDB"
                    )
                    log.info("window", window=w.label(), outcome=outcome, rows_total=summary.rows, bytes_total=summary.bytes)
            except StoreFailed as exc:
                _failed(summary, log, w, exc)
                store_down = True
                break
            except Exception as exc:  # one bad window never stops the others
                _failed(summary, log, w, exc)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rows=summary.rows, MB=round(summary.bytes / 1e6, 1), refresh=False)
        # Phase 2: bounded retention, window by window.
        if store_down and to_delete:
            log.warning("archive store failed: nothing deleted in this run", pending=len(to_delete))
        for w, index in [] if store_down else to_delete:
            try:
                archiver.delete_window(w, index, summary)
            except StoreFailed as exc:
                _failed(summary, log, w, exc)
                break
            except Exception as exc:
                _failed(summary, log, w, exc)
        if bar is not None:
            bar.close()
    finally:
        source.close()
        summary.seconds = time.monotonic() - began
    log.info("archive finished", **{k: v for k, v in vars(summary).items() if k != "failures"})
    return summary


def _failed(summary: ArchiveSummary, log, window: plan.Window, exc: Exception) -> None:
    summary.failed += 1
    summary.failures.append(f"{window.label()}: {exc}")
    log.error("window failed", window=window.label(), error=str(exc), error_type=type(exc).__name__)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="day", desc="archive", file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------------ CLI


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_argument_group("what to archive (whole UTC days)")
    when.add_argument("--older-than", type=float, metavar="DAYS", help="archive points older than DAYS (default: archive.older_than_days)")
    when.add_argument("--start", type=_moment, help="first day to archive (ISO date/time, UTC unless given)")
    when.add_argument("--end", type=_moment, help="archive up to this moment, exclusive (rounded down to a day)")
    when.add_argument("--measurement", action="append", dest="measurements", help="only this measurement (repeatable)")
    parser.add_argument("--keep", action="store_true", help="archive and verify, but never delete from InfluxDB")
    parser.add_argument("--delete", action="store_true", help="delete verified windows even when archiving to local disk only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")


def run(args: argparse.Namespace) -> int:
    from edge.logs import configure

    from edge.core.supervision import ServiceRuntime

    settings = ArchiveSettings.load(getattr(args, "config", None))
    log = configure(settings.log, "archive")
    runtime = ServiceRuntime("archive", settings.metrics, log)
    runtime.start_metrics()
    if args.older_than is not None and (args.start or args.end):
        print("edge archive: --older-than and --start/--end are exclusive", file=sys.stderr)
        return 2
    code = _run(settings, args, log, runtime)
    textfile = settings.archive.metrics_textfile
    if textfile and not args.dry_run:  # the run's outcome outlives the process
        from edge.ops.textfile import load_gauge, write_textfile

        if code != 0:
            load_gauge(textfile, LAST_SUCCESS)
        write_textfile(textfile, "edge_archive_")
    return code


def _run(settings: ArchiveSettings, args: argparse.Namespace, log, runtime) -> int:
    try:
        summary = archive(
            settings,
            args.start,
            args.end,
            older_than_days=args.older_than,
            keep=args.keep,
            delete=True if args.delete else None,
            dry_run=args.dry_run,
            measurements=args.measurements,
            log=log,
            runtime=runtime,
        )
    except InfluxError as exc:  # refused before any window (credentials, TLS): nothing done
        log.error("archive failed", error=str(exc))
        print(f"archive: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run:
        print(f"archive: {summary.line()}")
        for failure in summary.failures:
            print(f"archive: failed {failure}", file=sys.stderr)
        if not summary.failed:
            LAST_SUCCESS.set_to_current_time()
    return 1 if summary.failed else 0
