"""``edge sink``: Kafka parsed topic -> InfluxDB."""

from __future__ import annotations

import argparse

from edge.sink.stage import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="consumer group (default from [sink] group_id)")


def run(args: argparse.Namespace) -> int:
    return serve(args.config, args.group_id)
