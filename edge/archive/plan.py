"""What to archive, where it goes, and what to do next: pure functions, no I/O.

A *window* is one UTC day of one measurement for one site: the unit that is
exported, written, uploaded, verified and then deleted from InfluxDB. Its place in
the archive is the hive layout ``<measurement>/site_id=<s>/date=<YYYY-MM-DD>/``,
the same relative keys on local disk and under ``s3://<bucket>/<prefix>``.

A day directory holds ``part-00000.parquet`` (more parts only when points for an
already archived and deleted day turn up later) and ``_manifest.json``, which
Athena and DuckDB skip because of the leading underscore.

A window belongs to one retention policy: the one the sink writes
(``influxdb.retention_policy``, else the database's default) has the layout above;
every other policy, archived only when asked, goes to
``<measurement>__<policy>/...`` (a table of its own in Glue and DuckDB). Every
query names ``"db"."policy"."measurement"``, except ``DELETE``: InfluxQL's DELETE
takes no policy and removes the window from every policy of the database, so a
window is deleted only when every policy holding points in it was archived
(``delete_verdict``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

from edge.core.errors import UsageError

NS_PER_DAY = 86_400 * 1_000_000_000
MANIFEST_NAME = "_manifest.json"
# 2: a part's "columns" is a list of {"name", "type"} in the file's column order
# (1: an object, whose order the sorted-key JSON lost). Readers accept both.
MANIFEST_VERSION = 2

# Series without a site_id tag: InfluxQL's ``site_id = ''`` matches them; Hive's
# name for a missing partition value keeps them queryable.
NO_SITE = ""
NO_SITE_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Between a measurement and a policy other than the sink's in an archive table name
# (``field1__one_year``): a valid Glue/Athena table name, unlike any other separator.
POLICY_SEPARATOR = "__"


@dataclass(frozen=True, order=True)
class Window:
    measurement: str
    day: date
    site_id: str
    retention_policy: str = ""
    table: str = ""  # its directory's name: the measurement, or <measurement>__<policy>

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
        return f"{hive_escape(self.table or self.measurement)}/site_id={site}/date={self.day.isoformat()}"

    @property
    def delete_key(self) -> tuple[str, str, date]:
        """What one DELETE removes: this window in every retention policy."""
        return (self.measurement, self.site_id, self.day)

    @property
    def manifest_key(self) -> str:
        return f"{self.directory}/{MANIFEST_NAME}"

    def part_key(self, index: int) -> str:
        return f"{self.directory}/{part_name(index)}"

    def label(self) -> str:
        policy = f" rp={self.retention_policy}" if self.retention_policy else ""
        return f"{self.measurement} site_id={self.site_id or '-'} {self.day.isoformat()}{policy}"


def table_name(measurement: str, retention_policy: str, primary_policy: str) -> str:
    """The archive directory (and Glue table) of a measurement in a policy."""
    if retention_policy == primary_policy:
        return measurement
    return f"{measurement}{POLICY_SEPARATOR}{retention_policy}"


def table_collisions(pairs: list[tuple[str, str]], primary_policy: str) -> list[str]:
    """Table names that two (measurement, policy) pairs would share: archiving both
    would mix them in one directory."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for measurement, policy in pairs:
        owners.setdefault(table_name(measurement, policy, primary_policy), []).append((measurement, policy))
    return sorted(
        f"{name}: " + ", ".join(f'"{p}"."{m}"' for m, p in sorted(set(who)))
        for name, who in owners.items()
        if len(set(who)) > 1
    )


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


def floor_day(ns: int) -> int:
    return ns - ns % NS_PER_DAY


def archive_range(
    now: datetime,
    older_than_days: float,
    start: datetime | None,
    end: datetime | None,
    *,
    settle_minutes: float = 0.0,
    include_today: bool = False,
) -> tuple[int | None, int]:
    """[start, end) in ns covering whole, complete UTC days only.

    A window (a UTC day) is complete once its end is ``settle_minutes`` in the past;
    only complete windows are archived unless ``include_today`` lets in the ones
    still open (today's, and yesterday's within the settle time). The end is
    rounded down to a day boundary, so a window is never split between runs; an
    age of 0 means "up to the last complete window". The start is rounded down
    too (None: from the earliest point). Contradictory or empty ranges raise
    ``UsageError``.
    """
    if older_than_days < 0:
        raise UsageError(f"--older-than {older_than_days:g}: an age cannot be negative")
    if start is not None and end is not None and to_ns(start) >= to_ns(end):
        raise UsageError(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
    now_ns = to_ns(now)
    complete_end = floor_day(now_ns - int(settle_minutes * 60 * 1_000_000_000))
    limit = floor_day(now_ns) + NS_PER_DAY if include_today else complete_end
    if end is not None:
        end_ns = floor_day(to_ns(end))
        if end_ns > limit:
            raise UsageError(
                f"--end {end.isoformat()} reaches days that are not complete yet (the last complete"
                f" day ends {_iso_day(complete_end)}, settle_minutes={settle_minutes:g}); pass"
                " --include-today to archive them anyway"
            )
    elif older_than_days > 0:
        end_ns = min(floor_day(to_ns(now - timedelta(days=older_than_days))), limit)
    else:
        end_ns = limit
    start_ns = None if start is None else floor_day(to_ns(start))
    if start_ns is not None and start_ns >= end_ns:
        raise UsageError(
            f"nothing to archive: no whole day between --start {_iso_day(start_ns)} and the end"
            f" {_iso_day(end_ns)} (exclusive; only complete days unless --include-today)"
        )
    return start_ns, end_ns


def _iso_day(ns: int) -> str:
    return day_of_ns(ns).isoformat()


def windows_from_counts(
    measurement: str, rows: list[tuple[str, int, int]], retention_policy: str = "", table: str = ""
) -> list[Window]:
    """Windows from ``(site_id, bucket_start_ns, values)`` rows of the plan query."""
    return sorted(
        {Window(measurement, day_of_ns(ts), site, retention_policy, table) for site, ts, n in rows if n > 0}
    )


# ------------------------------------------------------------------ InfluxQL text


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qualified(database: str, retention_policy: str, measurement: str) -> str:
    """``"db"."rp"."measurement"``: exactly where the sink writes."""
    return ".".join(quote_ident(n) for n in (database, retention_policy, measurement))


def window_condition(window: Window) -> str:
    return (
        f"{quote_ident('site_id')} = {quote_str(window.site_id)}"
        f" AND time >= {window.start_ns} AND time < {window.end_ns}"
    )


def select_window(database: str, window: Window) -> str:
    source = qualified(database, window.retention_policy, window.measurement)
    return f"SELECT * FROM {source} WHERE {window_condition(window)}"


def count_window(database: str, window: Window, retention_policy: str | None = None) -> str:
    """Values per field in the window, in its own policy or in ``retention_policy``."""
    source = qualified(database, retention_policy or window.retention_policy, window.measurement)
    return f"SELECT count(*) FROM {source} WHERE {window_condition(window)}"


def delete_window(window: Window) -> str:
    """InfluxQL DELETE names no policy: it removes the window from every one."""
    return f"DELETE FROM {quote_ident(window.measurement)} WHERE {window_condition(window)}"


def count_plan(database: str, retention_policy: str, measurement: str, start_ns: int, end_ns: int) -> str:
    """Values per field per site per UTC day: the plan, in one query."""
    return (
        f"SELECT count(*) FROM {qualified(database, retention_policy, measurement)}"
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


@dataclass(frozen=True)
class DeleteVerdict:
    refused: str = ""  # the DELETE would remove points no archive holds
    changed: str = ""  # InfluxDB no longer holds what was archived

    @property
    def allowed(self) -> bool:
        return not (self.refused or self.changed)


def delete_verdict(archived: dict[str, dict[str, int]], influx: dict[str, dict[str, int]]) -> DeleteVerdict:
    """May one DELETE remove a window from every retention policy?

    ``archived``: policy -> values per field of its verified part, for each policy
    archived in this window; ``influx``: policy -> values per field in the window
    now, for every policy of the database. Refused when a policy that was not
    archived holds points there; not allowed either when an archived policy's
    points changed since the export.
    """
    for policy, counts in sorted(influx.items()):
        held = sum(counts.values())
        if held and policy not in archived:
            return DeleteVerdict(
                refused=f'retention policy "{policy}" holds {held} values in this window that are not archived'
            )
    for policy, counts in sorted(archived.items()):
        if influx.get(policy, {}) != counts:
            return DeleteVerdict(changed=f'retention policy "{policy}" changed since the export')
    return DeleteVerdict()


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
