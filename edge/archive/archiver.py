"""``edge archive``: InfluxDB -> Parquet -> S3 (or local disk), then bounded retention.

Scope: exactly what the sink writes, ``"db"."rp"."measurement"`` with
``influxdb.retention_policy`` or else the database's default policy
(``--all-policies``: every policy, each in its own tables). Work is done one
window (one complete UTC day of one measurement for one site in one policy) at a
time:

1. count the window's values in InfluxDB (per field) and read its manifest;
2. export it in chunks (``SELECT *``, streamed) into
   ``<archive dir>/<measurement>/site_id=<s>/date=<d>/part-NNNNN.parquet``, fsync
   the file and its directory, and describe it from the disk (``parquet_file``);
3. upload it to ``s3://<bucket>/<prefix><same key>`` with a SHA-256 checksum;
4. verify: object present, size and checksums, and the file's value counts equal
   InfluxDB's; write the manifest (rows, min/max time, checksums, columns) next to
   the data.

Then, once every window of the run is archived, and only if the store never failed
during the run (S3 down: nothing is deleted, everything is retried next run), for
each verified window: count it again in *every* retention policy (InfluxQL's
DELETE removes the window from all of them: a policy that holds points there and
was not archived refuses the delete, which is logged, counted and makes the run
exit 6), seal the part in the manifest, ``DELETE`` exactly that window
(``site_id`` tag and ``time >= a AND time < b``), mark it deleted.

A run killed anywhere resumes with the next run: an upload that was verified is
not repeated, a delete that did not happen is done, a half-written file is never
under its final name. Without S3 the layout is the same on local disk and nothing
is deleted unless asked (``--delete`` or ``archive.delete_without_s3``). InfluxDB
unreachable: the run stops where it is, deletes nothing more and raises
``UnreachableError``.

``archive(settings, ...)`` is the function the CLI and the demo call.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from prometheus_client import Counter, Gauge

from edge.archive import plan
from edge.archive import parquet_schema as schema
from edge.archive.export import InfluxArchiveSource, InfluxUnreachable
from edge.archive.parquet_file import WindowFailed, WrittenPart, write_window
from edge.archive.store import ArchiveStore, FileDigest, LocalStore
from edge.core.errors import NotFoundError, RefusedError, UnreachableError, UsageError
from edge.config.settings import ArchiveSettings

ROWS_EXPORTED = Gauge("edge_archive_rows_exported", "Rows exported to Parquet in this run")
WINDOWS_DONE = Gauge("edge_archive_windows_done", "Windows handled in this run (exported, skipped or failed)")
WINDOWS_FAILED = Gauge("edge_archive_windows_failed", "Windows that failed in this run")
LAST_SUCCESS = Gauge("edge_archive_last_success_timestamp_seconds", "Unix time the last run without a failed window ended")
DELETES_REFUSED = Counter(
    "edge_archive_deletes_refused",
    "Windows not deleted because the DELETE would remove points no archive holds",
    ["reason"],
)


@dataclass
class ArchiveSummary:
    windows: int = 0
    exported: int = 0  # windows written to Parquet in this run
    skipped: int = 0  # already archived and verified (kept in InfluxDB)
    deleted: int = 0  # windows deleted from InfluxDB in this run
    unchanged: int = 0  # nothing in InfluxDB for the window any more
    failed: int = 0
    refused: int = 0  # archived windows not deleted: another policy holds points there
    rows: int = 0  # rows exported in this run
    values: int = 0  # field values exported in this run
    bytes: int = 0  # Parquet bytes written in this run
    objects: int = 0  # objects uploaded (or written, local store) in this run
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"windows={self.windows} exported={self.exported} skipped={self.skipped}"
            f" deleted={self.deleted} refused={self.refused} failed={self.failed} rows={self.rows}"
            f" values={self.values} bytes={self.bytes} objects={self.objects}"
            f" seconds={self.seconds:.1f}"
        )


class DeleteRefused(RuntimeError):
    """The DELETE would remove points that no archive holds: not done."""


@dataclass(frozen=True)
class Scope:
    """Where the run reads: policies and measurements of the database."""

    primary: str  # the policy the sink writes: influxdb.retention_policy or the default
    policies: list[str]  # archived in this run (primary first)
    every_policy: list[str]  # all policies of the database: a DELETE reaches each
    measurements: list[str]


def resolve_scope(
    source: InfluxArchiveSource, settings: ArchiveSettings, measurements: list[str] | None, all_policies: bool
) -> Scope:
    """The run's scope; NotFoundError for a database, policy or measurement that
    does not exist, RefusedError when two policies would share a table."""
    db = settings.influxdb.database
    policies = source.retention_policies()
    names = [name for name, _ in policies]
    primary = settings.influxdb.retention_policy or next((n for n, default in policies if default), None)
    if primary is None:
        raise NotFoundError(f'influxdb: database "{db}" has no default retention policy (set influxdb.retention_policy)')
    if primary not in names:
        raise NotFoundError(
            f'influxdb: retention policy "{primary}" (influxdb.retention_policy) not found in database "{db}"'
        )
    existing = source.measurements()
    missing = [m for m in measurements or [] if m not in existing]
    if missing:
        raise NotFoundError(f'influxdb: measurement {", ".join(missing)} not found in database "{db}"')
    archived = [primary] + sorted(n for n in names if n != primary) if all_policies else [primary]
    collisions = plan.table_collisions([(m, p) for p in archived for m in existing], primary)
    if collisions:
        raise RefusedError("archive tables would mix two sources: " + "; ".join(collisions))
    return Scope(primary, archived, names, list(measurements or existing))


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
        scope: Scope,
    ):
        self.settings = settings
        self.source = source
        self.store = store
        self.local = local
        self.delete = delete
        self.log = log
        self.scope = scope
        self._types: dict[tuple[str, str], tuple[dict[str, pa.DataType], list[str]]] = {}

    def types(self, window: plan.Window) -> tuple[dict[str, pa.DataType], list[str]]:
        key = (window.retention_policy, window.measurement)
        if key not in self._types:
            self._types[key] = (
                schema.field_types(self.source.field_keys(*key)),
                self.source.tag_keys(*key),
            )
        return self._types[key]

    def plan(self, start_ns: int | None, end_ns: int) -> list[plan.Window]:
        windows: list[plan.Window] = []
        for policy in self.scope.policies:
            for m in self.scope.measurements:
                first = start_ns
                if first is None:
                    first = self.source.first_time_ns(policy, m)
                    if first is None:
                        continue
                    first = plan.floor_day(first)
                if first >= end_ns:
                    continue
                table = plan.table_name(m, policy, self.scope.primary)
                windows += plan.windows_from_counts(m, self.source.plan_counts(policy, m, first, end_ns), policy, table)
        return sorted(windows)

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
            fields, tags = self.types(window)
            options = self.settings.archive
            part = write_window(
                self.source, window, fields, tags, self.local.path(key),
                options.chunk_rows, options.zstd_level, options.row_group_rows,
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

    def held(self, window: plan.Window) -> dict[str, dict[str, int]]:
        """Values per field in the window, in every policy of the database."""
        return {policy: self.source.window_counts(window, policy) for policy in self.scope.every_policy}

    def preview_delete(self, windows: list[plan.Window]) -> plan.DeleteVerdict:
        """Would a DELETE of these windows (one per archived policy) be allowed now?"""
        held = self.held(windows[0])
        return plan.delete_verdict({w.retention_policy: held[w.retention_policy] for w in windows}, held)

    def delete_group(self, members: list[tuple[plan.Window, int]], summary: ArchiveSummary) -> None:
        """One window in every archived policy: check every policy, seal the verified
        parts, DELETE once (it reaches every policy), mark them deleted."""
        found: list[tuple[plan.Window, dict, dict]] = []
        for window, index in members:
            with _store_step(window, "read manifest"):
                manifest = self.store.get_json(window.manifest_key)
            part = next((p for p in (manifest or {}).get("parts", []) if p["index"] == index), None)
            if part is None:
                raise WindowFailed(f"{window.label()}: manifest lost part {index}; not deleted")
            found.append((window, manifest, part))
        first = members[0][0]
        verdict = plan.delete_verdict({w.retention_policy: p["field_counts"] for w, _, p in found}, self.held(first))
        what = _window_text(first)
        if verdict.refused:
            raise DeleteRefused(
                f"{what}: not deleted: {verdict.refused} (InfluxQL DELETE removes the window from every"
                " retention policy; archive them all with --all-policies, or keep the points with --keep)"
            )
        if verdict.changed:
            raise WindowFailed(f"{what}: InfluxDB changed since export ({verdict.changed}); not deleted")
        sealed = []
        for window, manifest, part in found:
            manifest = plan.marked(manifest, part["index"], sealed=True, sealed_at=datetime.now(UTC).isoformat())
            with _store_step(window, "seal"):
                self.store.put_json(window.manifest_key, manifest)
            sealed.append((window, manifest, part["index"]))
        self.source.delete(first)
        for window, manifest, index in sealed:
            manifest = plan.marked(manifest, index, deleted=True, deleted_at=datetime.now(UTC).isoformat())
            with _store_step(window, "mark deleted"):
                self.store.put_json(window.manifest_key, manifest)
            if self.store is not self.local:
                self.local.put_json(window.manifest_key, manifest)
            summary.deleted += 1


def _window_text(window: plan.Window) -> str:
    """A window across policies: what one DELETE removes."""
    return f"{window.measurement} site_id={window.site_id or '-'} {window.day.isoformat()}"


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
    all_policies: bool | None = None,
    include_today: bool = False,
    store: ArchiveStore | None = None,
    now: datetime | None = None,
    progress: bool | None = None,
    out=None,
    log=None,
    runtime=None,
) -> ArchiveSummary:
    """Archive every complete window in [start, end) (default: older than the configured age).

    ``delete``: None follows the settings (S3: delete after verify; local only: no
    delete unless ``archive.delete_without_s3``); ``keep`` wins over both.
    ``include_today`` lets in windows that are not complete yet (the current day).
    ``all_policies``: None follows ``archive.all_retention_policies``.
    Raises UsageError (range), NotFoundError (database, policy, measurement),
    UnreachableError (InfluxDB) and RefusedError (two policies, one table).
    """
    import structlog

    log = log or structlog.get_logger().bind(service="archive")
    out = out or sys.stdout
    began = time.monotonic()
    start_ns, end_ns = _time_range(settings, now, older_than_days, start, end, include_today)
    target, local = _stores(settings, store)
    delete = _wants_delete(settings, target is not local, delete, keep)
    if all_policies is None:
        all_policies = settings.archive.all_retention_policies
    source = InfluxArchiveSource(settings.influxdb)
    summary = ArchiveSummary()
    try:
        scope = resolve_scope(source, settings, measurements, all_policies)
        archiver = Archiver(settings, source, target, local, delete, log, scope)
        windows = _planned_windows(archiver, start_ns, end_ns, summary, dry_run)
        if dry_run:
            _print_plan(archiver, windows, target, out)
            return summary
        stopped = _archive_then_delete(archiver, windows, summary, log, runtime, progress, out)
    finally:
        source.close()
        summary.seconds = time.monotonic() - began
    log.info("archive_finished", **{k: v for k, v in vars(summary).items() if k not in ("failures", "refusals")})
    if isinstance(stopped, InfluxUnreachable):
        raise UnreachableError(f"{stopped}; the run stopped there ({summary.line()})")
    return summary


def _time_range(
    settings: ArchiveSettings,
    now: datetime | None,
    older_than_days: float | None,
    start: datetime | None,
    end: datetime | None,
    include_today: bool,
) -> tuple[int, int]:
    """[start, end) in ns: the given bounds, or else everything older than the configured age."""
    return plan.archive_range(
        now or datetime.now(UTC),
        settings.archive.older_than_days if older_than_days is None else older_than_days,
        start,
        end,
        settle_minutes=settings.archive.settle_minutes,
        include_today=include_today,
    )


def _planned_windows(
    archiver: Archiver, start_ns: int, end_ns: int, summary: ArchiveSummary, dry_run: bool
) -> list[plan.Window]:
    """The run's windows, counted in the summary and logged with what the run will do."""
    windows = archiver.plan(start_ns, end_ns)
    summary.windows = len(windows)
    archiver.log.info(
        "archive_planned",
        windows=len(windows),
        end=plan.day_of_ns(end_ns).isoformat(),
        retention_policies=archiver.scope.policies,
        store=archiver.store.name,
        delete=archiver.delete,
        dry_run=dry_run,
    )
    return windows


def _archive_then_delete(
    archiver: Archiver, windows: list[plan.Window], summary: ArchiveSummary, log, runtime, progress, out
) -> Exception | None:
    """Phase 1 for every window, then phase 2 only if nothing stopped the run;
    returns what stopped it, or None."""
    to_delete, failed_keys, stopped = _archive_windows(archiver, windows, summary, log, runtime, progress, out)
    if isinstance(stopped, StoreFailed) and to_delete:
        log.warning("archive_store_failed_nothing_deleted", pending=len(to_delete))
    if stopped is None:
        stopped = _delete_windows(archiver, to_delete, failed_keys, summary, log)
    return stopped


def _wants_delete(settings: ArchiveSettings, to_s3: bool, delete: bool | None, keep: bool) -> bool:
    """S3: delete after verify unless kept; local disk only: only when asked."""
    if delete is None:
        delete = settings.archive.delete_after_verify if to_s3 else settings.archive.delete_without_s3
    return delete and not keep


def _print_plan(archiver: Archiver, windows: list[plan.Window], target: ArchiveStore, out) -> None:
    """One line per window: the next step, and whether its delete would be allowed."""
    by_key: dict[tuple, list[plan.Window]] = defaultdict(list)
    for w in windows:
        by_key[w.delete_key].append(w)
    verdicts: dict[tuple, plan.DeleteVerdict] = {}
    for w in windows:
        decision, counts, _ = archiver.decide(w)
        then = ""
        if archiver.delete and decision.step is not plan.Step.NOTHING:
            if w.delete_key not in verdicts:
                verdicts[w.delete_key] = archiver.preview_delete(by_key[w.delete_key])
            verdict = verdicts[w.delete_key]
            then = " then delete" if verdict.allowed else f" delete refused: {verdict.refused or verdict.changed}"
        print(
            f"{decision.step.value:12s} {w.label():60s} values={sum(counts.values())}"
            f" -> {target.url(w.part_key(decision.part_index))}{then}",
            file=out,
        )


def _archive_windows(archiver: Archiver, windows, summary: ArchiveSummary, log, runtime, progress, out):
    """Phase 1: export, upload and verify every window.

    Returns the windows to delete, the delete keys of windows that failed, and
    what stopped the run early (a failing store or an unreachable InfluxDB: while
    either misbehaves nothing leaves InfluxDB), or None.
    """
    show_bar = out.isatty() if progress is None else progress
    bar = _progress_bar(len(windows), show_bar)
    to_delete: list[tuple[plan.Window, int]] = []
    failed_keys: set[tuple] = set()
    stopped: Exception | None = None
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
        except (StoreFailed, InfluxUnreachable) as exc:
            _failed(summary, log, w, exc)
            stopped = exc
            break
        except Exception as exc:  # one bad window never stops the others
            _failed(summary, log, w, exc)
            failed_keys.add(w.delete_key)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(rows=summary.rows, MB=round(summary.bytes / 1e6, 1), refresh=False)
    if bar is not None:
        bar.close()
    return to_delete, failed_keys, stopped


def _delete_windows(archiver: Archiver, to_delete, failed_keys: set, summary: ArchiveSummary, log) -> Exception | None:
    """Phase 2: bounded retention, one DELETE per window across its policies."""
    groups: dict[tuple, list[tuple[plan.Window, int]]] = defaultdict(list)
    for w, index in to_delete:
        groups[w.delete_key].append((w, index))
    for key, members in groups.items():
        first = members[0][0]
        if key in failed_keys:
            # The same window of another policy failed: its points are not archived.
            log.warning("window_not_deleted", window=_window_text(first), reason="another policy's window failed")
            continue
        try:
            archiver.delete_group(members, summary)
        except DeleteRefused as exc:
            summary.refused += 1
            summary.refusals.append(str(exc))
            DELETES_REFUSED.labels(reason="other_retention_policy").inc()
            log.warning("delete_refused", window=_window_text(first), reason=str(exc))
        except (StoreFailed, InfluxUnreachable) as exc:
            _failed(summary, log, first, exc)
            return exc
        except Exception as exc:
            _failed(summary, log, first, exc)
    return None


def _failed(summary: ArchiveSummary, log, window: plan.Window, exc: Exception) -> None:
    summary.failed += 1
    text = str(exc)  # most failures name their window already
    summary.failures.append(text if text.startswith(window.label()) else f"{window.label()}: {text}")
    log.error("window_failed", window=window.label(), error=str(exc), error_type=type(exc).__name__)


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
    when = parser.add_argument_group("what to archive (whole, complete UTC days)")
    when.add_argument("--older-than", type=float, metavar="DAYS",
                      help="archive points older than DAYS (default: archive.older_than_days;"
                           " 0: up to the last complete day)")
    when.add_argument("--start", type=_moment, help="first day to archive (ISO date/time, UTC unless given)")
    when.add_argument("--end", type=_moment, help="archive up to this moment, exclusive (rounded down to a day)")
    when.add_argument("--include-today", action="store_true",
                      help="also days not complete yet (today; yesterday within archive.settle_minutes):"
                           " their points are still arriving, and with a delete, points written between"
                           " the last count and the DELETE are lost")
    when.add_argument("--measurement", action="append", dest="measurements", help="only this measurement (repeatable)")
    when.add_argument("--all-policies", action="store_true", default=None,
                      help="archive every retention policy of the database, each under"
                           " <measurement>__<policy>/ (default: archive.all_retention_policies)")
    parser.add_argument("--keep", action="store_true", help="archive and verify, but never delete from InfluxDB")
    parser.add_argument("--delete", action="store_true", help="delete verified windows even when archiving to local disk only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")


def check_arguments(args: argparse.Namespace) -> None:
    """Contradictory options are refused before anything is read (UsageError)."""
    if args.keep and args.delete:
        raise UsageError("--keep and --delete contradict each other")
    if args.older_than is not None and (args.start or args.end):
        raise UsageError("--older-than and --start/--end are exclusive")
    if args.older_than is not None and args.older_than < 0:
        raise UsageError(f"--older-than {args.older_than:g}: an age cannot be negative")


def run(args: argparse.Namespace) -> int:
    from edge.runtime.logs import configure

    from edge.runtime.supervision import ServiceRuntime

    check_arguments(args)
    settings = ArchiveSettings.load(getattr(args, "config", None))
    log = configure(settings.log, "archive")
    runtime = ServiceRuntime("archive", settings.metrics, log)
    runtime.start_metrics()
    code = 1
    try:
        code = _run(settings, args, log, runtime)
    finally:
        textfile = settings.archive.metrics_textfile
        if textfile and not args.dry_run:  # the run's outcome outlives the process
            from edge.runtime.textfile import load_gauge, write_textfile

            if code != 0:
                load_gauge(textfile, LAST_SUCCESS)
            write_textfile(textfile, "edge_archive_")
    return code


def _run(settings: ArchiveSettings, args: argparse.Namespace, log, runtime) -> int:
    summary = archive(
        settings,
        args.start,
        args.end,
        older_than_days=args.older_than,
        keep=args.keep,
        delete=True if args.delete else None,
        dry_run=args.dry_run,
        measurements=args.measurements,
        all_policies=args.all_policies,
        include_today=args.include_today,
        log=log,
        runtime=runtime,
    )
    if args.dry_run:
        return 0
    print(f"archive: {summary.line()}")
    for failure in summary.failures:
        print(f"archive: failed {failure}", file=sys.stderr)
    for refusal in summary.refusals:
        print(f"archive: refused {refusal}", file=sys.stderr)
    if summary.refused:
        raise RefusedError(
            f"{summary.refused} archived window(s) not deleted: another retention policy holds points"
            " there that no archive holds (see above)"
        )
    if not summary.failed:
        LAST_SUCCESS.set_to_current_time()
    return 1 if summary.failed else 0
