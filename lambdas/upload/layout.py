"""Where an archive day's manifest sits:
``<prefix><measurement>/site_id=<s>/date=<YYYY-MM-DD>/_manifest.json``.

The archiver writes one manifest per day directory, beside the day's Parquet parts,
after every part it lists was uploaded and verified. Path segments are Hive-escaped
by the archiver (``%2F`` for ``/`` and so on), as Hive does: the catalog holds the
unescaped values, the locations keep the segments as they are in the key. Pure: a
key in, its measurement/site/date out, or the reason it is outside the layout.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import unquote

# The archiver's name for a day's manifest (edge archive: MANIFEST_NAME).
MANIFEST_NAME = "_manifest.json"
# Athena/Glue table names: lower-case letters, digits, underscore.
TABLE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
_LAYOUT = re.compile(r"^(?P<measurement>[^/]+)/site_id=(?P<site_id>[^/]+)/date=(?P<date>[^/]+)/(?P<file>[^/]+)$")
PARTITION_KEYS = ("site_id", "date")
# Hive's partition value for a missing one: the archiver's directory for points
# without a site_id tag (their manifest says site_id "").
NO_SITE_PARTITION = "__HIVE_DEFAULT_PARTITION__"


class OutsideLayout(ValueError):
    """The key is not an archive manifest; the reason says why."""


@dataclass(frozen=True)
class ArchiveDay:
    """One day directory of one measurement for one site."""

    prefix: str
    measurement_segment: str  # as in the key (Hive-escaped)
    site_segment: str  # as in the key (Hive-escaped)
    date: str

    @property
    def measurement(self) -> str:
        return unquote(self.measurement_segment)

    @property
    def site_id(self) -> str:
        return unquote(self.site_segment)

    @property
    def table_name(self) -> str:
        return self.measurement.lower()

    @property
    def partition_values(self) -> list[str]:
        return [self.site_id, self.date]

    @property
    def directory(self) -> str:
        """The day's directory relative to the prefix, as the manifest's part keys have it."""
        return f"{self.measurement_segment}/site_id={self.site_segment}/date={self.date}"

    def table_location(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}{self.measurement_segment}/"

    def partition_location(self, bucket: str) -> str:
        return f"{self.table_location(bucket)}site_id={self.site_segment}/date={self.date}/"


def parse_manifest_key(key: str, prefix: str = "archive/") -> ArchiveDay:
    """The archive day whose manifest is at ``key`` (already URL-decoded), or OutsideLayout."""
    if not key.startswith(prefix):
        raise OutsideLayout(f"key not under {prefix!r}")
    match = _LAYOUT.match(key[len(prefix) :])
    if not match:
        raise OutsideLayout(f"key does not match <measurement>/site_id=<s>/date=<YYYY-MM-DD>/{MANIFEST_NAME}")
    parts = match.groupdict()
    if parts["file"] != MANIFEST_NAME:
        raise OutsideLayout(f"not a day's manifest ({MANIFEST_NAME})")
    if not TABLE_NAME.match(unquote(parts["measurement"]).lower()):
        raise OutsideLayout("measurement name is not a valid table name (letters, digits, underscore)")
    try:
        day = dt.date.fromisoformat(parts["date"])
    except ValueError:
        raise OutsideLayout("date is not YYYY-MM-DD") from None
    if day.isoformat() != parts["date"]:
        raise OutsideLayout("date is not YYYY-MM-DD")
    return ArchiveDay(prefix, parts["measurement"], parts["site_id"], parts["date"])
