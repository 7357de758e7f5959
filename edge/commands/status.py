"""``edge status``: one table: each service's state, lag, last write, DLQ, last archive run;
then one row per InfluxDB node (``edge.ops.influx_health``).

The command's arguments and output; what each row holds and how it is read is
``edge.ops.status``."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from edge.ops.influx_health import node_rows, node_table, nodes_failing
from edge.ops.status import SERVICES, dlq_count, dlq_line, failing, service_health, table


def _port_option(text: str) -> tuple[str, int]:
    name, _, port = text.partition("=")
    if name not in SERVICES or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PORT, NAME one of {', '.join(SERVICES)}")
    return name, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: {services: [...], dlq: {...}, influxdb: [...]}")
    parser.add_argument("--port", action="append", type=_port_option, default=[], metavar="NAME=PORT",
                        help="a service's metrics port, when not [metrics] ports' nor its unit's (repeatable)")
    parser.add_argument("--service", action="append", choices=list(SERVICES), help="only this service (repeatable)")


def run(args: argparse.Namespace) -> int:
    from edge.config.settings import StatusSettings
    from edge.runtime.supervision import systemd_running

    config = getattr(args, "config", None)
    settings = StatusSettings.load(config)
    metrics = settings.metrics
    given = dict(args.port)
    ports = {**metrics.ports, **given}
    systemd = systemd_running()
    rows = [service_health(s, metrics.host, ports.get(s), systemd, settings.archive.directory, metrics.enabled,
                           s in given) for s in args.service or list(SERVICES)]
    dlq = dlq_count(config)
    nodes = node_rows(config)
    if args.json:
        print(json.dumps({"services": [asdict(h) for h in rows], "dlq": asdict(dlq),
                          "influxdb": [asdict(n) for n in nodes]}, indent=2))
    else:
        print(table(rows, time.time()))
        print(dlq_line(dlq))
        print(node_table(nodes))
    return 1 if failing(rows) or nodes_failing(nodes) else 0
