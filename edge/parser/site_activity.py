"""Per-site activity of the parser: when each site was last heard from, and how many
messages it sent, as Prometheus metrics with bounded cardinality.

- ``edge_parser_site_last_seen_timestamp_seconds{site_id}``: Unix time at which the
  parser last handled a message of the site (wall clock of the parser, not the
  message's own timestamp: a gateway with a wrong clock is still heard);
- ``edge_parser_site_messages_total{site_id}``: messages handled per site, whatever
  became of them (points, DLQ).

A site not heard from for ``forget_after_s`` leaves both metrics (and so do the
least recently seen sites beyond ``max_sites``), so a gateway that invents site ids
cannot grow the parser's memory or Prometheus' series without bound. The alert
``SiteSilent`` looks back further than a scrape (``max_over_time``), so a forgotten
or restarted-away site keeps alerting for that look-back.

``SiteTracker`` is the pure bookkeeping; ``SiteMetrics`` binds it to the metrics.
``site_of_series_key`` / ``site_of_raw`` tell a message's site from what the parser
already has (a point's series key), or, for a message that did not parse, from its
JSON header when it can be read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from prometheus_client import Counter, Gauge

from edge.core import lineproto

SITE_LAST_SEEN = Gauge(
    "edge_parser_site_last_seen_timestamp_seconds",
    "Unix time the parser last handled a message of this site",
    ["site_id"],
)
SITE_MESSAGES = Counter("edge_parser_site_messages", "Raw messages handled, per site", ["site_id"])

def site_of_series_key(key: bytes) -> str | None:
    """The ``site_id`` tag of a line-protocol series key, unescaped; None if absent."""
    return lineproto.tag_value(key, b"site_id")


def site_of_raw(raw: bytes | None) -> str | None:
    """``header.site_id`` of a raw message when its JSON can be read; else None."""
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        import json

        try:
            doc = json.loads(raw.decode("utf-8", "replace"), strict=False)
        except (ValueError, RecursionError):
            return None
    header = doc.get("header") if isinstance(doc, dict) else None
    site = header.get("site_id") if isinstance(header, dict) else None
    if isinstance(site, bool) or not isinstance(site, (str, int)):
        return None
    return str(site) or None


class SiteTracker:
    """Site -> last-seen time, oldest first; drops sites unseen for too long."""

    def __init__(self, forget_after_s: float, max_sites: int):
        self.forget_after_s = forget_after_s
        self.max_sites = max_sites
        self.last_seen: dict[str, float] = {}  # insertion order = least recently seen first

    def seen(self, site: str, now: float) -> list[str]:
        """Record ``site`` at ``now``; returns the sites evicted to stay within max_sites."""
        last_seen = self.last_seen
        if site in last_seen:
            del last_seen[site]
        last_seen[site] = now
        evicted = []
        while len(last_seen) > self.max_sites:
            oldest = next(iter(last_seen))
            del last_seen[oldest]
            evicted.append(oldest)
        return evicted

    def expire(self, now: float) -> list[str]:
        """Forget the sites not seen since ``now - forget_after_s``; returns them."""
        cutoff = now - self.forget_after_s
        gone = []
        for site, when in self.last_seen.items():
            if when >= cutoff:
                break
            gone.append(site)
        for site in gone:
            del self.last_seen[site]
        return gone


class SiteMetrics:
    """The parser's per-site metrics, kept in step with a :class:`SiteTracker`."""

    def __init__(self, forget_after_s: float, max_sites: int, *, clock: Callable[[], float] = time.time,
                 expire_every_s: float = 10.0):
        self.tracker = SiteTracker(forget_after_s, max_sites)
        self.clock = clock
        self.expire_every_s = expire_every_s
        self._next_expiry = 0.0
        self._children: dict[str, tuple] = {}

    def seen(self, site: str | None) -> None:
        if site is None:
            return
        now = self.clock()
        children = self._children.get(site)
        if children is None:
            children = (SITE_LAST_SEEN.labels(site_id=site), SITE_MESSAGES.labels(site_id=site))
            self._children[site] = children
        children[0].set(now)
        children[1].inc()
        for evicted in self.tracker.seen(site, now):
            self._remove(evicted)
        if now >= self._next_expiry:
            self._next_expiry = now + self.expire_every_s
            for gone in self.tracker.expire(now):
                self._remove(gone)

    def seen_points(self, points: list[tuple[bytes, bytes]]) -> None:
        """A message that gave points: its site is in every series key."""
        if points:
            self.seen(site_of_series_key(points[0][0]))

    def _remove(self, site: str) -> None:
        self._children.pop(site, None)
        for metric in (SITE_LAST_SEEN, SITE_MESSAGES):
            try:
                metric.remove(site)
            except KeyError:
                pass
