"""``edge simulate``: publish sample.json-shaped messages to the RabbitMQ queue.

Every message is published persistent (delivery mode 2) to the default exchange
with the queue name as routing key, ``mandatory`` set, on a channel in publisher
confirm mode: a message counts as confirmed only once the broker took
responsibility for it. Message ``i`` goes to site ``i % sites`` and each site's
timestamp steps one second per message from ``--start`` (see
``edge.simulator.messages``), so no two messages map to the same InfluxDB point.

The AMQP ``message_id`` is ``<site_id>/<timestamp>``, the AMQP timestamp is the
publish time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pika

from edge.bridge import amqp as amqp_client
from edge.core.errors import UnreachableError
from edge.core.lifecycle import StopSignal
from edge.simulator.messages import SAMPLE_PATH, MessageTemplate, parse_start, schedule
from edge.config.settings import SimulatorSettings

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
    start = start or newest_at_now(count, sites, rate, duration_s, datetime.now(timezone.utc))
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


def newest_at_now(count: int | None, sites: int, rate: float | None, duration_s: float | None,
                  now: datetime) -> datetime:
    """The default first timestamp: each site's timestamps step one second per
    message, so the run is stamped back from ``now`` and its newest message is at
    ``now`` (never in the future). A run for a duration at a rate counts its
    messages from both; one for a duration as fast as possible cannot know its
    count and starts at ``now``."""
    if count is None and rate and duration_s is not None:
        count = math.ceil(rate * duration_s)
    latest = parse_start(None, now)
    if not count:
        return latest
    return latest - timedelta(seconds=math.ceil(count / sites) - 1)


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


