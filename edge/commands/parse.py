"""``edge parse``: Kafka raw topic -> parsed topic and DLQ."""

from __future__ import annotations

import argparse

from edge.parser.stage import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="consumer group (default from [parser] group_id)")


def run(args: argparse.Namespace) -> int:
    return serve(args.config, args.group_id)
