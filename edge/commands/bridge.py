"""``edge bridge``: RabbitMQ queue -> Kafka raw topic."""

from __future__ import annotations

import argparse

from edge.bridge.stage import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge takes only the common --config."""


def run(args: argparse.Namespace) -> int:
    return serve(args.config)
