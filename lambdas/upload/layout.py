"""Where an archive object sits: ``<prefix><measurement>/site_id=<s>/date=<YYYY-MM-DD>/<file>.parquet``.

Pure: a key in, its measurement/site/date out, or the reason it is outside the layout.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

# Athena/Glue table names: lower-case letters, digits, underscore.
TABLE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")
_LAYOUT = re.compile(
    r"^(?P<measurement>[^/]+)/site_id=(?P<site_id>[^/]+)/date=(?P<date>[^/]+)/(?P<file>[^/]+\.parquet)$"
)
PARTITION_KEYS = ("site_id", "date")


class OutsideLayout(ValueError):
    """The key is not an archive Parquet object; the reason says why."""


@dataclass(frozen=True)
class ArchiveObject:
    prefix: str
    measurement: str
    site_id: str
    date: str
    file: str

    @property
    def table_name(self) -> str:
        return self.measurement.lower()

    @property
    def partition_values(self) -> list[str]:
        return [self.site_id, self.date]

    def table_location(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}{self.measurement}/"

    def partition_location(self, bucket: str) -> str:
        return f"{self.table_location(bucket)}site_id={self.site_id}/date={self.date}/"


def parse_key(key: str, prefix: str = "archive/") -> ArchiveObject:
    """The archive object at ``key`` (already URL-decoded), or OutsideLayout."""
    if not key.startswith(prefix):
        raise OutsideLayout(f"key not under {prefix!r}")
    match = _LAYOUT.match(key[len(prefix) :])
    if not match:
        raise OutsideLayout("key does not match <measurement>/site_id=<s>/date=<YYYY-MM-DD>/<file>.parquet")
    parts = match.groupdict()
    if not TABLE_NAME.match(parts["measurement"].lower()):
        raise OutsideLayout("measurement name is not a valid table name (letters, digits, underscore)")
    try:
        day = dt.date.fromisoformat(parts["date"])
    except ValueError:
        raise OutsideLayout("date is not YYYY-MM-DD") from None
    if day.isoformat() != parts["date"]:
        raise OutsideLayout("date is not YYYY-MM-DD")
    return ArchiveObject(prefix, parts["measurement"], parts["site_id"], parts["date"], parts["file"])
