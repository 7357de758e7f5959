"""The bridge's dead letters: a message Kafka refuses for good, kept in RabbitMQ.

Republished, byte for byte with its properties, to the durable queue ``<queue>.dlq``
with ``x-edge-dlq-*`` headers saying why; the publish is confirmed before the
original delivery is acked, so a failure to dead-letter hands the message back to
its queue instead of dropping it. ``dead_letter_properties`` is pure.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pika

MAX_ERROR_CHARS = 1000


def dead_letter_properties(properties, *, reason: str, error: str, source_queue: str,
                           now: datetime | None = None) -> pika.BasicProperties:
    headers = dict(getattr(properties, "headers", None) or {})
    headers.update({
        "x-edge-dlq-reason": reason,
        "x-edge-dlq-error": error[:MAX_ERROR_CHARS],
        "x-edge-dlq-source-queue": source_queue,
        "x-edge-dlq-time": (now or datetime.now(timezone.utc)).isoformat(),
    })
    return pika.BasicProperties(
        content_type=getattr(properties, "content_type", None),
        content_encoding=getattr(properties, "content_encoding", None),
        message_id=getattr(properties, "message_id", None),
        correlation_id=getattr(properties, "correlation_id", None),
        timestamp=getattr(properties, "timestamp", None),
        app_id=getattr(properties, "app_id", None),
        type=getattr(properties, "type", None),
        headers=headers,
        delivery_mode=2,
    )


def publish_confirmed(channel, queue: str, body: bytes, properties: pika.BasicProperties) -> str | None:
    """Publish on a confirm-mode channel; None when confirmed, else why not."""
    try:
        channel.basic_publish("", queue, body, properties, mandatory=True)
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
