"""The services of the pipeline, in one table: what each is called on the command
line and in the settings, its settings class, its systemd unit and its metrics port.

Everything that lists services reads it: the CLI (``edge <command>``), the settings
(which sections exist), ``edge config check`` (``--service``), ``edge status``
(which units and ports to look at) and ``edge install`` (which units to write).

Metrics ports are fixed and documented, as node_exporter's 9100 is: bridge 9641,
parser 9642, sink 9643, archive 9644 (the ``[metrics] ports`` table overrides
them; ``[metrics] port`` overrides the port of the one service that reads it).
Pure: no settings are loaded or imported here (the settings class is named;
``edge.config.settings.SERVICE_SETTINGS`` maps it), so ``edge --help`` stays fast
and the table imports nothing of the settings that read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str  # in the settings, logs and metrics: edge_<name>_*
    command: str  # edge <command>
    help: str
    settings_class: str  # its class in edge.config.settings
    unit: str | None = None  # systemd unit of deploy/systemd
    timer: str | None = None  # the unit's timer, for a oneshot
    metrics_port: int | None = None  # default [metrics] ports.<name>
    long_running: bool = False  # expected to be running all the time
    aliases: tuple[str, ...] = ()


SERVICES: tuple[Service, ...] = (
    Service("bridge", "bridge", "RabbitMQ queue -> Kafka raw topic", "BridgeSettings",
            unit="edge-bridge.service", metrics_port=9641, long_running=True),
    Service("parser", "parse", "Kafka raw topic -> parsed topic and DLQ", "ParserSettings",
            unit="edge-parser.service", metrics_port=9642, long_running=True),
    Service("sink", "sink", "Kafka parsed topic -> InfluxDB", "SinkSettings",
            unit="edge-sink.service", metrics_port=9643, long_running=True),
    Service("archive", "archive", "InfluxDB -> Parquet -> S3, then bounded retention", "ArchiveSettings",
            unit="edge-archive.service", timer="edge-archive.timer", metrics_port=9644),
    Service("query", "query", "SQL over the archive: Athena, or --local with DuckDB", "QuerySettings"),
    Service("simulate", "simulate", "publish sample.json-shaped messages to RabbitMQ", "SimulatorSettings",
            aliases=("simulator",)),
    Service("topics", "topics", "create the raw, parsed and DLQ topics (idempotent)", "TopicsSettings"),
)
BY_NAME = {s.name: s for s in SERVICES}


def lookup(name: str) -> Service | None:
    """A service by its name, its command or an alias (``parse`` -> parser)."""
    for service in SERVICES:
        if name in (service.name, service.command, *service.aliases):
            return service
    return None


def with_units() -> tuple[Service, ...]:
    """The services that run as systemd units (bridge, parser, sink, archive)."""
    return tuple(s for s in SERVICES if s.unit)


def default_metrics_ports() -> dict[str, int]:
    return {s.name: s.metrics_port for s in SERVICES if s.metrics_port is not None}
