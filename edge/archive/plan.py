"""What to archive, where it goes, and what to do next: pure functions, no I/O.

A *window* is one UTC day of one measurement for one site: the unit that is
exported, written, uploaded, verified and then deleted from InfluxDB. Its place in
the archive is the hive layout ``<measurement>/site_id=<s>/date=<YYYY-MM-DD>/``,
the same relative keys on local disk and under ``s3://<bucket>/<prefix>``.

A day directory holds ``part-00000.parquet`` (more parts only when points for an
already archived and deleted day turn up later) and ``_manifest.json``, which
Athena and DuckDB skip because of the leading underscore.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

NS_PER_DAY = 86_400 * 1_000_000_000
MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1

# Series without a site_id tag: InfluxQL's ``site_id = ''`` matches them; Hive's
# name for a missing partition value keeps them queryable.
NO_SITE = ""
NO_SITE_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True, order=True)
class Window:
    measurement: str
    day: date
    site_id: str

    @property
    def start_ns(self) -> int:
        return day_start_ns(self.day)

    @property
    def end_ns(self) -> int:
        return self.start_ns + NS_PER_DAY

    @property
    def directory(self) -> str:
        """Relative hive directory of this window, '/'-separated, no trailing '/'."""
        site = NO_SITE_PARTITION if self.site_id == NO_SITE else hive_escape(self.site_id)
        return f"{hive_escape(self.measurement)}/site_id={site}/date={self.day.isoformat()}"

    @property
    def manifest_key(self) -> str:
        return f"{self.directory}/{MANIFEST_NAME}"

    def part_key(self, index: int) -> str:
        return f"{self.directory}/{part_name(index)}"

    def label(self) -> str:
        return f"{self.measurement} site_id={self.site_id or '-'} {self.day.isoformat()}"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def hive_escape(value: str) -> str:
    """Percent-encode what cannot stand in a hive path segment (as Hive does)."""
    return quote(value, safe=" -_.~+@,;:!$&'()*")


def day_start_ns(day: date) -> int:
    return (day - date(1970, 1, 1)).days * NS_PER_DAY


def day_of_ns(ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ns // NS_PER_DAY)


def to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def archive_range(
    now: datetime, older_than_days: float, start: datetime | None, end: datetime | None
) -> tuple[int | None, int]:
    """[start, end) in ns covering whole UTC days only.

    The end is rounded down to a day boundary: a day is archived only once all of it
    is older than the cut-off, so a window is never split between two runs. The
    start is rounded down too (None: from the earliest point). An age of 0 means
    everything up to now, today included (points of today arriving later land in
    a new part of the day).
    """
    if end is None and older_than_days <= 0:
        # Age 0 (the demo): everything up to now, today's partial day included.
        end_ns = to_ns(now) + NS_PER_DAY
    else:
        end_ns = to_ns(end) if end is not None else to_ns(now - timedelta(days=older_than_days))
    end_ns -= end_ns % NS_PER_DAY
    start_ns = None
    if start is not None:
        start_ns = to_ns(start)
        start_ns -= start_ns % NS_PER_DAY
    return start_ns, end_ns


def windows_from_counts(measurement: str, rows: list[tuple[str, int, int]]) -> list[Window]:
    """Windows from ``(site_id, bucket_start_ns, values)`` rows of the plan query."""
    return sorted(
        {Window(measurement, day_of_ns(ts), site) for site, ts, n in rows if n > 0}
    )


# ------------------------------------------------------------------ InfluxQL text


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def window_condition(window: Window) -> str:
    return (
        f"{quote_ident('site_id')} = {quote_str(window.site_id)}"
        f" AND time >= {window.start_ns} AND time < {window.end_ns}"
    )


def select_window(window: Window) -> str:
    return f"SELECT * FROM {quote_ident(window.measurement)} WHERE {window_condition(window)}"


def count_window(window: Window) -> str:
    return f"SELECT count(*) FROM {quote_ident(window.measurement)} WHERE {window_condition(window)}"


def delete_window(window: Window) -> str:
    return f"DELETE FROM {quote_ident(window.measurement)} WHERE {window_condition(window)}"


def count_plan(measurement: str, start_ns: int, end_ns: int) -> str:
    """Values per field per site per UTC day: the plan, in one query."""
    return (
        f"SELECT count(*) FROM {quote_ident(measurement)}"
        f" WHERE time >= {start_ns} AND time < {end_ns}"
        f" GROUP BY time(1d), {quote_ident('site_id')} fill(none)"
    )


# ------------------------------------------------------------------ decisions


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


def sealed_parts(manifest: dict | None) -> list[dict]:
    if not manifest:
        return []
    return [p for p in manifest.get("parts", []) if p.get("sealed")]


def decide(
    manifest: dict | None,
    influx_counts: dict[str, int],
    stored_part_ok: bool,
    delete: bool,
) -> Decision:
    """Next step for a window from its manifest and InfluxDB's counts now.

    A part becomes *sealed* (immutable) just before its window is deleted and is
    marked *deleted* right after. A sealed, not yet deleted part whose counts still
    equal InfluxDB's means a run stopped between sealing and deleting: delete again. An open part that equals InfluxDB and verifies in the
    store needs no new upload. Anything else is exported into the open part (which
    it replaces) or, when every part is sealed, into a new part: points that turned
    up after their day was deleted never overwrite what was archived before.
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
        "site_id": window.site_id,
        "date": window.day.isoformat(),
        "window_start_ns": window.start_ns,
        "window_end_ns": window.end_ns,
        "parts": [],
    }


def with_part(manifest: dict | None, window: Window, part: dict) -> dict:
    """The manifest with ``part`` added, or replacing the open part of its index."""
    result = dict(manifest) if manifest else new_manifest(window)
    parts = [p for p in result.get("parts", []) if p["index"] != part["index"]]
    parts.append(part)
    result["parts"] = sorted(parts, key=lambda p: p["index"])
    return result


def marked(manifest: dict, index: int, **flags) -> dict:
    """The manifest with ``flags`` set on part ``index`` (sealed=..., deleted=...)."""
    result = dict(manifest)
    result["parts"] = [{**p, **flags} if p["index"] == index else p for p in manifest["parts"]]
    return result
