"""A fleet's split of the work: which sites one archiver takes. Pure.

``--shard I/N`` (or ``archive.shard``): archiver I of N (1-based) takes the
windows of the sites whose stable hash falls to it, every measurement and policy
and day of those sites. The hash is SHA-256 of the site id, so every host, every
Python and every run agrees: two archivers with different I and the same N never
take the same window, and N archivers together take every window. A site's
windows in every policy go to the same archiver, so one DELETE (which reaches
every policy) is decided by one archiver.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from edge.core.errors import UsageError

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1..count
    count: int

    def holds(self, site_id: str) -> bool:
        return shard_of(site_id, self.count) == self.index

    def text(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(site_id: str, count: int) -> int:
    """The shard (1..count) of a site: a stable hash, the same on every host."""
    digest = hashlib.sha256(site_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str | None) -> Shard | None:
    """``"2/3"`` -> Shard(2, 3); None -> None (every site). UsageError otherwise."""
    if text is None:
        return None
    found = _FORM.fullmatch(text)
    if not found:
        raise UsageError(f"--shard {text!r}: expected I/N, archiver I of N (1-based), like 2/3")
    index, count = int(found.group(1)), int(found.group(2))
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: I must be between 1 and N ({count})")
    return Shard(index, count)
