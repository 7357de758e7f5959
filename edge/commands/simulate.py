"""``edge simulate``: publish sample.json-shaped messages to the RabbitMQ queue
(``edge.simulator.publish``). Timestamps step one second per message per site from
``--start`` (default: now)."""

from __future__ import annotations

import argparse
import socket
from datetime import datetime, timezone
from pathlib import Path

from edge.bridge import amqp as amqp_client
from edge.commands.options import above, at_least
from edge.config.settings import SimulatorSettings
from edge.core.errors import UnreachableError
from edge.core.lifecycle import StopSignal
from edge.simulator.messages import SAMPLE_PATH, parse_start
from edge.simulator.publish import SimulationSummary, publish


def _sample_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def _fraction(text: str) -> float:
    value = at_least(0, float)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), e.g. 0.05 (got {text})")
    return value


def _start(text: str) -> datetime:
    try:
        return parse_start(text, datetime.now(timezone.utc))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: {exc} (expected 'YYYY-MM-DD HH:MM:SS' in UTC, or ISO 8601 with an offset)"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=at_least(0, float), default=0.0,
                        help="messages per second (default 0: as fast as confirms allow)")
    parser.add_argument("--sites", type=at_least(1), default=1,
                        help="number of distinct site_id values (000001, 000002, ...)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--count", type=at_least(1), help="number of messages (default 100)")
    amount.add_argument("--duration", type=above(0), help="publish for this many seconds instead of a count")
    parser.add_argument("--jitter", type=_fraction, default=0.0,
                        help="vary every measurement by up to this fraction (e.g. 0.05)")
    parser.add_argument("--start", type=_start, help="first header.timestamp, 'YYYY-MM-DD HH:MM:SS' UTC (default: stamped back from now, one second per message per site, so the newest message is at now; with --duration and no --rate: now)")
    parser.add_argument("--sample", type=_sample_file, default=str(SAMPLE_PATH),
                        help="sample message to publish (default: sample/sample.json)")


def run(args: argparse.Namespace) -> int:
    settings = SimulatorSettings.load(args.config)
    stop = StopSignal().install()
    count = None if args.duration is not None else (args.count if args.count is not None else 100)
    try:
        summary = _publish_from_args(settings, args, count, stop)
    except (*amqp_client.CONNECTION_ERRORS, socket.gaierror) as exc:
        # One line naming the hop and the cause (wrong password, untrusted
        # certificate, unknown host ...), never the password; nothing was
        # confirmed after it.
        raise UnreachableError(amqp_client.describe_error(exc, settings.amqp)) from None
    print(summary.line(), flush=True)
    return 0


def _publish_from_args(settings: SimulatorSettings, args: argparse.Namespace, count, stop) -> SimulationSummary:
    return publish(
        settings,
        count=count,
        sites=args.sites,
        rate=args.rate,
        jitter=args.jitter,
        start=args.start,
        duration_s=args.duration,
        sample=args.sample,
        stop=stop,
    )
