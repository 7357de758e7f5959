"""``edge simulate``: publish sample.json-shaped messages to the RabbitMQ queue.

Every message is published persistent (delivery mode 2) to the default exchange
with the queue name as routing key, ``mandatory`` set, on a channel in publisher
confirm mode: a message counts as confirmed only once the broker took
responsibility for it. Message ``i`` goes to site ``i % sites`` and each site's
timestamp steps one second per message from ``--start`` (see
``edge.dev.sample_messages``), so no two messages map to the same InfluxDB point.

The AMQP ``message_id`` is ``<site_id>/<timestamp>``, the AMQP timestamp is the
publish time.
"""

from __future__ import annotations

import argparse
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pika

from edge.amqp import client as amqp_client
from edge.cli import above, at_least
from edge.core.errors import UnreachableError
from edge.core.lifecycle import StopSignal
from edge.dev.sample_messages import SAMPLE_PATH, MessageTemplate, parse_start, schedule
from edge.settings import SimulatorSettings

CONTENT_TYPE = "application/json"
APP_ID = "edge-simulator"
MAX_PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class SimulationSummary:
    published: int
    confirmed: int
    sites: int
    elapsed_s: float
    first_timestamp: datetime | None
    last_timestamp: datetime | None

    @property
    def rate(self) -> float:
        return self.confirmed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"simulate: published={self.published} confirmed={self.confirmed} sites={self.sites} "
            f"elapsed={self.elapsed_s:.2f}s rate={self.rate:.1f} msgs/s"
        )


def publish(
    settings: SimulatorSettings,
    count: int | None = 100,
    sites: int = 1,
    rate: float | None = None,
    jitter: float = 0.0,
    start: datetime | None = None,
    duration_s: float | None = None,
    sample: Path | str = SAMPLE_PATH,
    stop: StopSignal | None = None,
) -> SimulationSummary:
    """Publish ``count`` messages (or for ``duration_s``) over ``sites`` sites at
    ``rate`` msgs/s (None or 0: as fast as confirms come back)."""
    if count is None and duration_s is None:
        raise ValueError("give a count or a duration")
    template = MessageTemplate.load(sample)
    start = start or parse_start(None, datetime.now(timezone.utc))
    amqp = settings.amqp
    connection = amqp_client.connect(amqp, APP_ID)
    published = confirmed = 0
    first = last = None
    t0 = time.monotonic()
    try:
        channel = connection.channel()
        amqp_client.declare_queue(channel, amqp)
        channel.confirm_delivery()
        for i, (site, ts) in enumerate(schedule(count, sites, start)):
            now = time.monotonic()
            if duration_s is not None and now - t0 >= duration_s:
                break
            if stop is not None and stop.is_set():
                break
            if rate:
                delay = t0 + i / rate - now
                if delay > 0:
                    time.sleep(delay)
            body = template.render(site, ts, jitter)
            published += _publish_until_confirmed(channel, amqp.queue, body, _message_properties(site, ts))
            confirmed += 1
            first = first or ts
            last = ts
    finally:
        elapsed = time.monotonic() - t0
        if connection.is_open:
            connection.close()
    return SimulationSummary(published, confirmed, sites, elapsed, first, last)


def _message_properties(site: str, ts: datetime) -> pika.BasicProperties:
    """Persistent JSON, ``message_id`` ``<site_id>/<timestamp>``, stamped with the publish time."""
    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=f"{site}/{ts:%Y-%m-%d %H:%M:%S}",
        timestamp=int(time.time()),
        app_id=APP_ID,
    )


def _publish_until_confirmed(channel, queue: str, body: bytes, properties: pika.BasicProperties) -> int:
    """Publish (mandatory, confirmed) again after each broker nack, at most
    MAX_PUBLISH_ATTEMPTS times; returns the attempts made. The last nack raises."""
    attempt = 1
    while True:
        try:
            channel.basic_publish("", queue, body, properties, mandatory=True)
            return attempt
        except pika.exceptions.NackError:
            if attempt == MAX_PUBLISH_ATTEMPTS:
                raise
            attempt += 1


def _start(text: str) -> datetime:
    try:
        return parse_start(text, datetime.now(timezone.utc))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: {exc} (expected 'YYYY-MM-DD HH:MM:SS' in UTC, or ISO 8601 with an offset)"
        ) from None


def _fraction(text: str) -> float:
    value = at_least(0, float)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), e.g. 0.05 (got {text})")
    return value


def _sample_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


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
    parser.add_argument("--start", type=_start, help="first header.timestamp, 'YYYY-MM-DD HH:MM:SS' UTC (default: now)")
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
