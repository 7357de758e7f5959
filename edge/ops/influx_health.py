"""``edge status``'s InfluxDB rows: each node of the site map (``[influxdb]`` and
``[influxdb.nodes]``), reachable or not, and why.

One ``GET /ping`` per node (unauthenticated in InfluxDB 1.x; Enterprise's data
nodes answer it too): ``up`` with the server's version when it answers 204,
``down`` with the reason otherwise (connection refused, no answer within the
timeout, TLS, another program on the port). The map's settings are read as the
archive reads them; when they cannot be read (an unreadable secret file, a bad
map) one row says so and the exit status is 1, as for a node that is down.
"""

from __future__ import annotations

from dataclasses import dataclass

PING_TIMEOUT_S = 5.0  # a node busy compacting or answering an export can be slow to /ping


@dataclass
class NodeHealth:
    node: str
    url: str = ""
    state: str = "unknown"  # up | down | unknown
    version: str = ""
    sites: str = ""  # what the map gives it, in words
    detail: str = ""


def sites_text(node: str, patterns: list[str], default: bool) -> str:
    """What the map gives the node, in words: its rules, and "every other site" for the default."""
    shown = ", ".join(patterns)
    if default:
        return f"{shown} + every other site" if shown else "every site no other node names"
    return shown or "(no site)"


def node_rows(config: str | None) -> list[NodeHealth]:
    """One row per node, pinged; one ``unknown`` row when the settings cannot be read."""
    from edge.config.settings import ArchiveSettings, SettingsError

    try:
        influx = ArchiveSettings.load(config).influxdb
    except SettingsError as exc:
        return [NodeHealth("?", detail=f"the [influxdb] settings cannot be read: {exc}")]
    from edge.influx.nodes import InfluxNodes

    nodes = InfluxNodes(influx, connect_timeout_s=PING_TIMEOUT_S)
    rules = influx.routes().rules
    rows = []
    try:
        for name, client in nodes.each():
            row = NodeHealth(name, client.base_url,
                             sites=sites_text(name, list(rules.get(name, [])), name == nodes.routes.default))
            ping(client, row)
            rows.append(row)
    finally:
        nodes.close()
    return rows


def ping(client, row: NodeHealth) -> None:
    """Fill ``row`` from one ``/ping`` of ``client``'s node."""
    import requests

    from edge.core.failures import socket_reason

    try:
        answer = client.session.get(f"{client.base_url}/ping", timeout=PING_TIMEOUT_S, verify=client.verify)
    except requests.RequestException as exc:
        row.state = "down"
        if isinstance(exc, requests.exceptions.SSLError):
            row.detail = f"TLS failure: {socket_reason(exc) or exc}"
        else:
            timed_out = isinstance(exc, requests.Timeout)
            row.detail = socket_reason(exc) or (f"no answer within {PING_TIMEOUT_S:g} s" if timed_out
                                                else type(exc).__name__)
        return
    version = answer.headers.get("X-Influxdb-Version", "")
    if answer.status_code == 204 and version:
        row.state, row.version = "up", version
    elif answer.status_code in (401, 403):
        row.state, row.version = "up", version
        row.detail = f"/ping answered HTTP {answer.status_code} (ping-auth-enabled?): the server runs"
    else:
        row.state = "down"
        row.detail = f"/ping answered HTTP {answer.status_code} without an InfluxDB version: not InfluxDB?"


def node_table(rows: list[NodeHealth]) -> str:
    header = ("INFLUXDB NODE", "STATE", "URL", "VERSION", "SITES", "DETAIL")
    cells = [header] + [(r.node, r.state, r.url or "-", r.version or "-", r.sites or "-", r.detail) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def nodes_failing(rows: list[NodeHealth]) -> list[NodeHealth]:
    """Nodes that make the exit status 1: down, or not known."""
    return [r for r in rows if r.state != "up"]
