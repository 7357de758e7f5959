"""The InfluxDB nodes of a deployment and which one holds a site.

One ``InfluxClient`` per node, made when first asked for, from ``[influxdb]`` with
the node's URL (``InfluxSettings.node_settings``); the site -> node map is
``edge.core.site_routes``. With no ``[influxdb.nodes]`` there is one node,
"default" (``[influxdb] url``), and every site is on it: what a single-node
deployment always had.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Gauge

from edge.config.sections import InfluxSettings
from edge.core.site_routes import SiteRoutes
from edge.influx.client import InfluxClient

SITE_MAP_VERSION = Gauge("edge_influx_site_map_version",
                         "influxdb.site_map_version of the site -> node map this service runs with (0: one node)")


class InfluxNodes:
    def __init__(self, settings: InfluxSettings, *, connect_timeout_s: float = 3.0):
        self.settings = settings
        self.routes: SiteRoutes = settings.routes()
        self.version = settings.site_map_version
        self._connect_timeout_s = connect_timeout_s
        self._clients: dict[str, InfluxClient] = {}

    @property
    def names(self) -> list[str]:
        """Every node, the default first."""
        return self.settings.node_names

    @property
    def several(self) -> bool:
        return len(self.names) > 1

    def url(self, node: str) -> str:
        return self.settings.node_settings(node).url

    def node_for(self, site: str | None) -> str:
        return self.routes.node_for(site)

    def client(self, node: str) -> InfluxClient:
        client = self._clients.get(node)
        if client is None:
            client = InfluxClient(self.settings.node_settings(node), connect_timeout_s=self._connect_timeout_s)
            self._clients[node] = client
        return client

    def for_site(self, site: str | None) -> InfluxClient:
        """The client of the node that holds ``site``."""
        return self.client(self.node_for(site))

    def each(self) -> Iterator[tuple[str, InfluxClient]]:
        """(name, client) of every node, the default first."""
        for name in self.names:
            yield name, self.client(name)

    def describe(self) -> dict[str, str]:
        """Node -> URL, for logs and status."""
        return {name: self.url(name) for name in self.names}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
