"""librdkafka configuration for the project's producers and consumers.

The delivery guarantees live here, in one place: idempotent producers with
acks=all, consumers that never auto-commit (each service commits explicitly, only
after its outputs are acknowledged). Operator properties from ``[kafka.client]``
(SASL, SSL, timeouts) are layered on top, except the few that would break those
guarantees.
"""

from __future__ import annotations

import socket
from typing import Any

from edge.runtime.logs import librdkafka_logger
from edge.config.settings import KafkaSettings

# Properties an operator may not override: they are the at-least-once contract.
_PRODUCER_FIXED = {"acks": "all", "enable.idempotence": True}
_CONSUMER_FIXED = {"enable.auto.commit": False, "enable.auto.offset.store": False}

# Consumer-only and producer-only keys in [kafka.client] are routed to the right
# client, so one section can hold both without librdkafka warnings.
_CONSUMER_ONLY_PREFIXES = (
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "fetch.",
    "group.",
    "partition.assignment.strategy",
    "isolation.level",
    "queued.",
)
_PRODUCER_ONLY_PREFIXES = (
    "linger.ms",
    "batch.",
    "compression.",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.",
    "retries",
    "retry.backoff",
    "max.in.flight",
    "request.timeout.ms",
)


def _split(conf: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in conf.items() if not k.startswith(drop)}


def producer_config(kafka: KafkaSettings, client_id: str, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "logger": librdkafka_logger(),  # librdkafka's lines as rate-limited log events
        "client.id": client_id,
        # A record waits at most this long for others to share its request: at field
        # rates batches are small anyway, and each hop's linger is latency.
        "linger.ms": 1,
        "compression.type": "lz4",
        # A record not delivered within this time fails its delivery report, and the
        # caller hands the input back (nack / no commit) instead of waiting forever.
        "message.timeout.ms": 60_000,
    }
    conf.update(_split(kafka.client_config(), _CONSUMER_ONLY_PREFIXES))
    conf.update(extra)
    conf.update(_PRODUCER_FIXED)
    return conf


def group_instance_id(kafka: KafkaSettings, service: str, host: str | None = None) -> str | None:
    """This member's static id, or None for dynamic membership."""
    template = kafka.group_instance_id.strip()
    if not template:
        return None
    return template.format(host=host or socket.gethostname(), service=service)


def consumer_config(kafka: KafkaSettings, group_id: str, client_id: str, *, service: str | None = None,
                    **extra: Any) -> dict[str, Any]:
    """A group member's configuration; ``service`` makes it a static member."""
    conf: dict[str, Any] = {
        "logger": librdkafka_logger(),
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        # How long a fetch may wait for data. Apache Kafka answers a waiting fetch as
        # soon as data arrives; tansu holds it for the whole wait, so on tansu this is
        # added to each hop of the publish-to-queryable latency (bench.pipeline
        # (d)). 10 ms costs an idle consumer a hundred empty fetches a second (the
        # README's Benchmarks give the CPU). On Apache Kafka a longer wait costs no
        # latency: set "fetch.wait.max.ms" = 500 under [kafka.client] there.
        "fetch.wait.max.ms": 10,
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
    }
    instance = group_instance_id(kafka, service) if service else None
    if instance:
        conf["group.instance.id"] = instance
    conf.update(_split(kafka.client_config(), _PRODUCER_ONLY_PREFIXES))
    conf.update(extra)
    conf.update(_CONSUMER_FIXED)
    return conf


def admin_config(kafka: KafkaSettings, client_id: str, **extra: Any) -> dict[str, Any]:
    """Operator properties (SASL, SSL...) without the producer- or consumer-only ones."""
    conf: dict[str, Any] = {"logger": librdkafka_logger(), "client.id": client_id}
    conf.update(_split(kafka.client_config(), _CONSUMER_ONLY_PREFIXES + _PRODUCER_ONLY_PREFIXES))
    conf.update(extra)
    return conf
