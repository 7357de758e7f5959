"""AMQP delivery metadata -> Kafka record headers. Pure (duck-typed pika objects).

The bridge keeps the AMQP body byte for byte as the Kafka value; what RabbitMQ
knew about the message travels in these headers (all values UTF-8 text):

  amqp.exchange          exchange it was published to ("" = the default exchange)
  amqp.routing_key       routing key
  amqp.redelivered       "true", only when RabbitMQ flagged a redelivery
  amqp.message_id        message-id property          (when present)
  amqp.timestamp         timestamp property, seconds since the epoch (when present)
  amqp.content_type      content-type property        (when present)
  amqp.content_encoding  content-encoding property    (when present)
  amqp.correlation_id    correlation-id property      (when present)
  amqp.app_id            app-id property              (when present)
  amqp.type              type property                (when present)
  amqp.header.<name>     each application header of the message (bytes kept as
                         they are, anything else as its text form)
"""

from __future__ import annotations

from typing import Any

Header = tuple[str, bytes]

_PROPERTIES = (
    ("message_id", "amqp.message_id"),
    ("timestamp", "amqp.timestamp"),
    ("content_type", "amqp.content_type"),
    ("content_encoding", "amqp.content_encoding"),
    ("correlation_id", "amqp.correlation_id"),
    ("app_id", "amqp.app_id"),
    ("type", "amqp.type"),
)


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode("utf-8", "replace")


def kafka_headers(method: Any, properties: Any) -> list[Header]:
    """Headers for one delivery: ``method`` is a Basic.Deliver, ``properties`` a
    BasicProperties (or anything with the same attributes)."""
    headers: list[Header] = [
        ("amqp.exchange", _text(method.exchange or "")),
        ("amqp.routing_key", _text(method.routing_key or "")),
    ]
    if getattr(method, "redelivered", False):
        headers.append(("amqp.redelivered", b"true"))
    if properties is None:
        return headers
    for attribute, name in _PROPERTIES:
        value = getattr(properties, attribute, None)
        if value is not None:
            headers.append((name, _text(value)))
    for key, value in (getattr(properties, "headers", None) or {}).items():
        if value is not None:
            headers.append((f"amqp.header.{key}", _text(value)))
    return headers
