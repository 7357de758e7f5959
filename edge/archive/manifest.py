"""A window's manifest (``_manifest.json``) and the next step it implies. Pure.

The manifest lists a window's verified parts: rows, values per field, min/max
time, size, SHA-256, columns. A part is *open* until it is *sealed* (immutable)
just before its window is deleted from InfluxDB, and is marked *deleted* right
after. ``decide`` reads where a window stands from its manifest and InfluxDB's
counts now; a run killed anywhere resumes from there.
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


def decide(
    manifest: dict | None,
    influx_counts: dict[str, int],
    stored_part_ok: bool,
    delete: bool,
) -> Decision:
    """Next step for a window from its manifest and InfluxDB's counts now.

    A sealed, not yet deleted part whose counts still equal InfluxDB's means a run
    stopped between sealing and deleting: delete again. An open part that equals
    InfluxDB and verifies in the store needs no new upload. Anything else is
    exported into the open part (which it replaces) or, when every part is sealed,
    into a new part: points that turned up after their day was deleted never
    overwrite what was archived before.
    """
    parts = (manifest or {}).get("parts", [])
    next_index = len(parts)
    if not any(influx_counts.values()):
        return Decision(Step.NOTHING, next_index)
    current = open_part(manifest)
    if current is not None:
        if current["field_counts"] == influx_counts and stored_part_ok:
            return Decision(Step.DELETE_ONLY if delete else Step.SKIP, current["index"])
        return Decision(Step.EXPORT, current["index"])
    last = parts[-1] if parts else None
    if (
        last is not None
        and not last.get("deleted")
        and last["field_counts"] == influx_counts
        and stored_part_ok
    ):
        return Decision(Step.DELETE_ONLY if delete else Step.SKIP, last["index"])
    return Decision(Step.EXPORT, next_index)


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


def part_record(index: int, key: str, url: str, part: WrittenPart) -> dict:
    """A written and verified part as its manifest lists it (open: not sealed)."""
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
