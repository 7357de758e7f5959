"""RabbitMQ connection settings and queue declaration shared by the simulator and
the bridge (pika)."""

from __future__ import annotations

import os
import socket
import ssl

import pika

from edge.settings import AmqpSettings

# Exceptions after which the connection (or its channel) is unusable: reconnect.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ChannelClosed,
    ConnectionError,
)


def connection_parameters(amqp: AmqpSettings, client_name: str) -> pika.ConnectionParameters:
    ssl_options = None
    if amqp.tls:
        context = ssl.create_default_context(cafile=amqp.ca_file)
        if amqp.cert_file:
            context.load_cert_chain(amqp.cert_file, amqp.key_file)
        ssl_options = pika.SSLOptions(context, server_hostname=amqp.server_hostname or amqp.host)
    return pika.ConnectionParameters(
        host=amqp.host,
        port=amqp.port,
        virtual_host=amqp.vhost,
        credentials=pika.PlainCredentials(amqp.username, amqp.password.get_secret_value()),
        heartbeat=amqp.heartbeat_s,
        ssl_options=ssl_options,
        connection_attempts=1,
        socket_timeout=5,
        blocked_connection_timeout=60,
        # Shown by `rabbitmqctl list_connections client_properties`: who is this?
        client_properties={"connection_name": f"{client_name}@{socket.gethostname()}:{os.getpid()}"},
    )


def connect(amqp: AmqpSettings, client_name: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(connection_parameters(amqp, client_name))


def declare_queue(channel, amqp: AmqpSettings) -> int:
    """Declare the queue durable when missing (``declare_queue``), else check it
    exists (passive). Returns the number of ready messages in it."""
    if amqp.declare_queue:
        arguments = {"x-queue-type": amqp.queue_type} if amqp.queue_type != "classic" else None
        frame = channel.queue_declare(amqp.queue, durable=True, arguments=arguments)
    else:
        frame = channel.queue_declare(amqp.queue, passive=True)
    return frame.method.message_count


def dead_letter_queue_name(amqp: AmqpSettings) -> str:
    return amqp.dead_letter_queue or f"{amqp.queue}.dlq"


def declare_dead_letter_queue(channel, amqp: AmqpSettings) -> str:
    """The durable queue for messages Kafka refuses for good (declared when
    ``declare_queue``, else checked passively). Returns its name."""
    name = dead_letter_queue_name(amqp)
    channel.queue_declare(name, durable=True, passive=not amqp.declare_queue)
    return name
