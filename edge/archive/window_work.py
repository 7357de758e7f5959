"""The work on one window: decide, export, upload, verify; later seal and delete.

``WindowWork`` holds what every window of a run shares (settings, InfluxDB, the
store, the local directory, the scope) and does one window at a time; the run
loop (``edge.archive.archiver``) decides the order and what a failure stops.

- ``archive_window``: read the window's manifest and count its values per field
  in InfluxDB (a window without parts is counted while it exports, on another
  connection: a count(*) costs InfluxDB ~0.6x the read it counts); unless the manifest shows it archived and verified, export it in
  chunks into ``<archive dir>/<table>/site_id=<s>/date=<d>/part-NNNNN.parquet``
  (fsynced, described from the disk), upload it with a SHA-256 checksum, verify
  (object present, size and checksums, the file's value counts equal InfluxDB's;
  where they differ, InfluxDB is counted again after the export and the file must
  equal that) and write the manifest next to the data.
- points for a day whose parts are sealed: ``edge.archive.consolidation`` merges
  them and the parts into one new part;
- ``delete_group``: one window in every archived policy; count it again in every
  policy of the database, seal the verified parts, DELETE once, mark them deleted.

A failure of the store (S3) is raised as ``StoreFailed``: the run stops and
deletes nothing more.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pyarrow as pa

from edge.archive import manifest as manifests
from edge.archive import parquet_schema as schema
from edge.archive import retention
from edge.archive.nodes import NodeArchiveSource
from edge.archive.parquet_file import WindowFailed, WrittenPart, write_window
from edge.archive.scope import Scope
from edge.archive.consolidation import consolidate, finish_removal
from edge.archive.store import ArchiveStore, FileDigest, LocalStore, StoreFailed, store_step
from edge.archive.summary import ArchiveSummary
from edge.archive.layout import table_name
from edge.archive.windows import Window, day_of_ns, floor_day
from edge.config.settings import ArchiveSettings


class DeleteRefused(RuntimeError):
    """The DELETE would remove points that no archive holds: not done."""


def window_text(window: Window) -> str:
    """A window across policies: what one DELETE removes."""
    return f"{window.measurement} site_id={window.site_id or '-'} {window.day.isoformat()}"


class WindowWork:
    def __init__(
        self,
        settings: ArchiveSettings,
        source: NodeArchiveSource,
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

    def types(self, window: Window) -> tuple[dict[str, pa.DataType], list[str]]:
        key = (window.retention_policy, window.measurement)
        if key not in self._types:
            self._types[key] = (
                schema.field_types(self.source.field_keys(*key)),
                self.source.tag_keys(*key),
            )
        return self._types[key]

    def plan(self, start_ns: int | None, end_ns: int, parts: int = 1) -> list[Window]:
        """Every window in [start, end) holding points, in every archived policy
        (``parts``: queries at once)."""
        windows: list[Window] = []
        for policy in self.scope.policies:
            for m in self.scope.measurements:
                first = start_ns
                if first is None:
                    first = self.source.first_time_ns(policy, m)
                    if first is None:
                        continue
                    first = floor_day(first)
                if first >= end_ns:
                    continue
                table = table_name(m, policy, self.scope.primary)
                days = self.source.plan_days(policy, m, first, end_ns, parts)
                windows += {Window(m, day_of_ns(day), site, policy, table) for site, day in days}
        return sorted(windows)

    def manifest(self, window: Window) -> dict | None:
        with store_step(window, "read manifest"):
            return self.store.get_json(window.manifest_key)

    def decide(self, window: Window, manifest: dict | None = None
               ) -> tuple[manifests.Decision, dict[str, int], dict | None]:
        """The window's next step from its manifest (``manifest``, else read now) and
        InfluxDB's counts now."""
        counts = self.source.window_counts(window)
        with store_step(window, "read manifest"):
            if manifest is None:
                manifest = self.store.get_json(window.manifest_key)
            parts = (manifest or {}).get("parts", [])
            stored_ok = False
            if parts and any(counts.values()):
                last = parts[-1]
                key = window.part_key(last["index"])
                stored_ok = self.store.verify(
                    key, FileDigest(last["bytes"], last["sha256"]), self.local.path(key)
                )
        return manifests.decide(manifest, counts, stored_ok, self.delete), counts, manifest

    def archive_window(self, window: Window, summary: ArchiveSummary) -> int | None:
        """Export, write, upload, verify. The part index to delete next, or None."""
        manifest = self.manifest(window)
        if not (manifest or {}).get("parts"):  # nothing archived yet: export it
            return self._first_export(window, manifest, summary)
        decision, counts, manifest = self.decide(window, manifest)
        step = decision.step
        if step is manifests.Step.NOTHING:
            summary.unchanged += 1
            return None
        if step is manifests.Step.SKIP:
            summary.skipped += 1
            return None
        if manifest and manifest.get("replaced"):  # a run stopped after a switch
            manifest = finish_removal(self, window, manifest)
        index = decision.part_index
        if step is manifests.Step.EXPORT:
            self._export(window, index, counts, manifest, summary)
        elif step is manifests.Step.CONSOLIDATE:
            _counted(summary, consolidate(self, window, index, counts, manifest, summary))
        return index if self.delete else None

    def _first_export(self, window: Window, manifest: dict | None, summary: ArchiveSummary) -> int | None:
        """A window without parts is exported whatever InfluxDB's counts, so they are
        taken while it exports, on another connection: InfluxDB counts on one core
        while it answers the export on another, instead of one after the other."""
        with ThreadPoolExecutor(1) as pool:
            counting = pool.submit(_count, self.source, window)
            try:
                self._export(window, manifests.next_index(manifest), counting, manifest, summary)
            except WindowFailed:
                if any(counting.result().values()):
                    raise
                summary.unchanged += 1  # its points went since the plan: nothing to archive
                return None
        return manifests.next_index(manifest) if self.delete else None

    def _export(self, window: Window, index: int, counts: dict[str, int] | Future, manifest: dict | None,
                summary: ArchiveSummary) -> None:
        key = window.part_key(index)
        fields, tags = self.types(window)
        options = self.settings.archive
        part = write_window(
            self.source, window, fields, tags, self.local.path(key),
            options.chunk_rows, options.zstd_level, options.row_group_rows,
        )
        if isinstance(counts, Future):
            counts = counts.result()
        if part.field_counts != counts:
            # Counted before or while it exported: InfluxDB is counted again, now. If
            # points came or went while exporting, the next run exports again.
            counts = self.source.window_counts(window)
            if part.field_counts != counts:
                raise WindowFailed(f"{window.label()}: counts changed during export")
        record = manifests.part_record(index, key, self.store.url(key), part)
        manifest = manifests.with_part(manifest, window, record)
        with store_step(window, "upload"):
            self.store.put_file(key, part.path, part.digest)
            if not self.store.verify(key, part.digest, part.path):
                raise StoreFailed(f"{window.label()}: {self.store.url(key)} failed verification")
            self.store.put_json(window.manifest_key, manifest)
        if self.store is not self.local:
            self.local.put_json(window.manifest_key, manifest)
        _counted(summary, part)

    def held(self, window: Window) -> dict[str, dict[str, int]]:
        """Values per field in the window, in every policy of the database."""
        return {policy: self.source.window_counts(window, policy) for policy in self.scope.every_policy}

    def preview_delete(self, windows: list[Window]) -> retention.DeleteVerdict:
        """Would a DELETE of these windows (one per archived policy) be allowed now?"""
        held = self.held(windows[0])
        return retention.delete_verdict({w.retention_policy: held[w.retention_policy] for w in windows}, held)

    def delete_group(self, members: list[tuple[Window, int]], summary: ArchiveSummary) -> None:
        """One window in every archived policy: check every policy, seal the verified
        parts, DELETE once (it reaches every policy), mark them deleted."""
        found: list[tuple[Window, dict, dict]] = []
        for window, index in members:
            with store_step(window, "read manifest"):
                manifest = self.store.get_json(window.manifest_key)
            part = next((p for p in (manifest or {}).get("parts", []) if p["index"] == index), None)
            if part is None:
                raise WindowFailed(f"{window.label()}: manifest lost part {index}; not deleted")
            found.append((window, manifest, part))
        first = members[0][0]
        verdict = retention.delete_verdict(
            {w.retention_policy: manifests.source_counts(p) for w, _, p in found}, self.held(first)
        )
        what = window_text(first)
        if verdict.refused:
            raise DeleteRefused(
                f"{what}: not deleted: {verdict.refused} (InfluxQL DELETE removes the window from every"
                " retention policy; archive them all with --all-policies, or keep the points with --keep)"
            )
        if verdict.changed:
            raise WindowFailed(f"{what}: InfluxDB changed since export ({verdict.changed}); not deleted")
        sealed = []
        for window, manifest, part in found:
            manifest = manifests.marked(manifest, part["index"], sealed=True, sealed_at=_now())
            with store_step(window, "seal"):
                self.store.put_json(window.manifest_key, manifest)
            sealed.append((window, manifest, part["index"]))
        self.source.delete(first)
        for window, manifest, index in sealed:
            manifest = manifests.marked(manifest, index, deleted=True, deleted_at=_now())
            with store_step(window, "mark deleted"):
                self.store.put_json(window.manifest_key, manifest)
            if self.store is not self.local:
                self.local.put_json(window.manifest_key, manifest)
            summary.deleted += 1


def _count(source: NodeArchiveSource, window: Window) -> dict[str, int]:
    counter = source.counter()
    try:
        return counter.window_counts(window)
    finally:
        counter.close()


def _counted(summary: ArchiveSummary, part: WrittenPart) -> None:
    summary.exported += 1
    summary.objects += 1
    summary.rows += part.rows
    summary.values += sum(part.field_counts.values())
    summary.bytes += part.digest.size


def _now() -> str:
    return datetime.now(UTC).isoformat()

