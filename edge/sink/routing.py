"""Which InfluxDB node a parsed record goes to: the node of its site
(``edge.core.site_routes``), read from its Kafka key.

The parser keys each record by its series key (measurement and sorted tags,
escaped as line protocol: ``edge.core.lineproto.series_key``), which carries the
``site_id`` tag. Reading that tag costs a few microseconds; a series keeps its key,
so key -> node is cached and the common record costs one dict lookup. A record
with no key (not produced by the parser) is routed by its line's own series key;
one without a ``site_id`` tag goes to the default node, as a site no rule names
does: never dropped.

Only used with several nodes: with one, every record is the default node's and
nothing is looked at.
"""

from __future__ import annotations

from edge.core.lineproto import series_key, tag_value
from edge.core.site_routes import SiteRoutes

SITE_TAG = b"site_id"
CACHE_MAX = 200_000  # series keys remembered (about 30 MB); cleared when full


class NodeRouter:
    def __init__(self, routes: SiteRoutes, cache_max: int = CACHE_MAX):
        self.routes = routes
        self.cache_max = cache_max
        self.cache: dict[bytes, str] = {}  # series key -> node: the hot path reads it directly

    def node_of(self, msg) -> str:
        """The node of one record (the path taken when its key is not cached yet)."""
        key = msg.key()
        if key is None:
            value = msg.value()
            key = series_key(value) if isinstance(value, bytes) else b""
        node = self.cache.get(key)
        if node is None:
            node = self.routes.node_for(tag_value(key, SITE_TAG))
            if len(self.cache) >= self.cache_max:
                self.cache.clear()
            self.cache[key] = node
        return node
