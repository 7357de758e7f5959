"""A window's manifest (``_manifest.json``) and the next step it implies. Pure.

The manifest lists a window's verified parts: rows, values per field, min/max
time, size, SHA-256, columns. A part is *open* until it is *sealed* (immutable)
just before its window is deleted from InfluxDB, and is marked *deleted* right
after. ``decide`` reads where a window stands from its manifest and InfluxDB's
counts now; a run killed anywhere resumes from there.

Points that arrive for a day whose parts are sealed are *consolidated*
(``edge.archive.consolidation``): one new part holds the listed parts and the
new points merged by InfluxDB's rule, and ``consolidated`` switches the
manifest to it in one write; it names the parts it replaced (``replaced``) until
they are removed. A part's ``source_counts`` are InfluxDB's values per field
that it took (what a DELETE may remove); its ``field_counts`` are what its file
holds (for a consolidated part, more: the sealed parts' points).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge.archive.windows import Window

if TYPE_CHECKING:
    from edge.archive.parquet_file import WrittenPart

# 2: a part's "columns" is a list of {"name", "type"} in the file's column order
# (1: an object, whose order the sorted-key JSON lost). Readers accept both.
MANIFEST_VERSION = 2


class Step(enum.Enum):
    NOTHING = "nothing"  # no points in InfluxDB for the window: done or never there
    SKIP = "skip"  # archived and verified, and the points stay (keep)
    DELETE_ONLY = "delete-only"  # archived and verified by an earlier run; delete now
    EXPORT = "export"  # export (again) into the open part
    CONSOLIDATE = "consolidate"  # earlier parts + InfluxDB's points merged into a new part


@dataclass(frozen=True)
class Decision:
    step: Step
    part_index: int


def open_part(manifest: dict | None) -> dict | None:
    """The last part if it is not sealed: the one a re-run may replace."""
    if not manifest or not manifest.get("parts"):
        return None
    last = manifest["parts"][-1]
    return None if last.get("sealed") else last


def source_counts(part: dict) -> dict[str, int]:
    """InfluxDB's values per field that the part took (manifests before
    consolidation: its file's counts, the same thing)."""
    return part.get("source_counts", part["field_counts"])


def next_index(manifest: dict | None) -> int:
    """A part index never used in this window (consolidation removes lower ones)."""
    parts = (manifest or {}).get("parts", [])
    return max((p["index"] for p in parts), default=-1) + 1


def decide(
    manifest: dict | None,
    influx_counts: dict[str, int],
    stored_part_ok: bool,
    delete: bool,
) -> Decision:
    """Next step for a window from its manifest and InfluxDB's counts now.

    A sealed, not yet deleted part whose counts still equal InfluxDB's means a run
    stopped between sealing and deleting: delete again. An open part that equals
    InfluxDB and verifies in the store needs no new upload. A lone open part that
    does not is exported again (replaced). Any other change is a consolidation
    into a new part: the listed parts (sealed ones hold points InfluxDB may no
    longer have) and InfluxDB's points, merged, so an archived part is never
    overwritten and the day holds each (series, time) once.
    """
    parts = (manifest or {}).get("parts", [])
    fresh = next_index(manifest)
    if not any(influx_counts.values()):
        return Decision(Step.NOTHING, fresh)
    last = parts[-1] if parts else None
    if last is None:
        return Decision(Step.EXPORT, fresh)
    if source_counts(last) == influx_counts and stored_part_ok and not last.get("deleted"):
        return Decision(Step.DELETE_ONLY if delete else Step.SKIP, last["index"])
    if len(parts) == 1 and not last.get("sealed") and not last.get("replaces"):
        return Decision(Step.EXPORT, last["index"])
    return Decision(Step.CONSOLIDATE, fresh)


def new_manifest(window: Window) -> dict:
    return {
        "version": MANIFEST_VERSION,
        "measurement": window.measurement,
        "retention_policy": window.retention_policy,
        "site_id": window.site_id,
        "date": window.day.isoformat(),
        "window_start_ns": window.start_ns,
        "window_end_ns": window.end_ns,
        "parts": [],
    }


def part_record(index: int, key: str, url: str, part: WrittenPart, source: dict[str, int] | None = None) -> dict:
    """A written and verified part as its manifest lists it (open: not sealed).
    ``source``: InfluxDB's values it took, when not all of the file's (consolidation)."""
    return {
        "index": index,
        "file": Path(key).name,
        "key": key,
        "url": url,
        "rows": part.rows,
        "field_counts": part.field_counts,
        "source_counts": part.field_counts if source is None else source,
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


def with_part(manifest: dict | None, window: Window, part: dict) -> dict:
    """The manifest with ``part`` added, or replacing the open part of its index."""
    result = dict(manifest) if manifest else new_manifest(window)
    result["version"] = MANIFEST_VERSION
    parts = [p for p in result.get("parts", []) if p["index"] != part["index"]]
    parts.append(part)
    result["parts"] = sorted(parts, key=lambda p: p["index"])
    return result


def marked(manifest: dict, index: int, **flags) -> dict:
    """The manifest with ``flags`` set on part ``index`` (sealed=..., deleted=...)."""
    result = dict(manifest)
    result["parts"] = [{**p, **flags} if p["index"] == index else p for p in manifest["parts"]]
    return result


def consolidated(manifest: dict, part: dict) -> dict:
    """The manifest switched to one consolidated ``part``, which replaces every
    part listed before: those are named in ``replaced`` until they are removed."""
    result = dict(manifest)
    result["version"] = MANIFEST_VERSION
    gone = [p["key"] for p in manifest.get("parts", [])]
    result["parts"] = [{**part, "replaces": [p["index"] for p in manifest.get("parts", [])]}]
    result["replaced"] = sorted(set(manifest.get("replaced", [])) | set(gone))
    return result


def without_replaced(manifest: dict) -> dict:
    """The manifest once the replaced parts are removed from the store."""
    return {k: v for k, v in manifest.items() if k != "replaced"}
