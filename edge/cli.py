"""The ``edge`` command: one subcommand per service or task.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so a
service's heavy imports never slow down another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("edge.dev.simulator", "publish sample.json-shaped messages to RabbitMQ"),
    "topics": ("edge.kafka.topics", "create the raw, parsed and DLQ topics (idempotent)"),
    "bridge": ("edge.stages.bridge", "RabbitMQ queue -> Kafka raw topic"),
    "parse": ("edge.stages.parse", "Kafka raw topic -> parsed topic and DLQ"),
    "sink": ("edge.stages.sink", "Kafka parsed topic -> InfluxDB"),
    "archive": ("edge.archive.archiver", "InfluxDB -> Parquet -> S3, then bounded retention"),
    "query": ("edge.query.command", "SQL over the archive: Athena, or --local with DuckDB"),
    "config": ("edge.ops.config_check", "validate a config file and print the effective settings"),
    "install": ("edge.ops.install", "install systemd units and a config skeleton"),
    "replay": ("edge.ops.replay", "parse the raw topic again from a moment on, into the parsed topic"),
    "dlq": ("edge.ops.dlq", "list, show and redrive dead letters"),
    "restore": ("edge.ops.restore", "write archived points back into an InfluxDB database"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Campus microgrid telemetry pipeline")
    parser.add_argument("--config", help="TOML settings file (default: $EDGE_CONFIG or /etc/edge/edge.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if name == command:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
