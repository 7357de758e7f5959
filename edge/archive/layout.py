"""Where a window's files sit in the archive: the hive layout. Pure.

``<table>/site_id=<s>/date=<YYYY-MM-DD>/`` holds ``part-00000.parquet`` (a higher
index once points for an already archived day were consolidated with it) and
``_manifest.json``, which Athena and DuckDB skip because of the leading
underscore. The same relative keys are used on local disk and under
``s3://<bucket>/<prefix>``.

A table is the measurement for the policy the sink writes
(``influxdb.retention_policy``, else the database's default); every other policy,
archived only when asked, goes to ``<measurement>__<policy>/`` (a table of its own
in Glue and DuckDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, unquote

MANIFEST_NAME = "_manifest.json"

# Series without a site_id tag: InfluxQL's ``site_id = ''`` matches them; Hive's
# name for a missing partition value keeps them queryable.
NO_SITE = ""
NO_SITE_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Between a measurement and a policy other than the sink's in an archive table name
# (``field1__one_year``): a valid Glue/Athena table name, unlike any other separator.
POLICY_SEPARATOR = "__"


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


def day_directory(table: str, site_id: str, day: date) -> str:
    """Relative hive directory of one table's day for one site, '/'-separated."""
    site = NO_SITE_PARTITION if site_id == NO_SITE else hive_escape(site_id)
    return f"{hive_escape(table)}/site_id={site}/date={day.isoformat()}"


def table_prefix(table: str) -> str:
    """The key prefix of every file of a table."""
    return hive_escape(table) + "/"


@dataclass(frozen=True)
class PartKey:
    """What a part's key says: ``<table>/site_id=<s>/date=<d>/part-N.parquet``."""

    key: str
    table: str
    site_id: str | None  # None: series without a site_id tag
    day: date

    @property
    def directory(self) -> str:
        return self.key.rsplit("/", 1)[0]

    @property
    def file(self) -> str:
        return self.key.rsplit("/", 1)[1]


def parse_part_key(key: str) -> PartKey | None:
    """The table, site and day of a Parquet part's key; None for anything else
    (a manifest, a temporary file, a key outside the layout)."""
    pieces = key.split("/")
    if len(pieces) != 4:
        return None
    table, site, day, name = pieces
    if not (site.startswith("site_id=") and day.startswith("date=") and name.endswith(".parquet")):
        return None
    if name.startswith("."):
        return None  # a temporary file
    try:
        when = date.fromisoformat(day.removeprefix("date="))
    except ValueError:
        return None
    site_id = site.removeprefix("site_id=")
    return PartKey(key, unquote(table), None if site_id == NO_SITE_PARTITION else unquote(site_id), when)
