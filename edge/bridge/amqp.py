"""RabbitMQ connection settings and queue declaration shared by the simulator and
the bridge (pika).

TLS (``[amqp] tls = true``, AMQPS, usually port 5671): the server certificate is
verified against ``ca_file`` (else the system's trust store) and its name against
``server_hostname`` (else ``host``); TLS 1.2 is the oldest version offered, and the
cipher suites are OpenSSL's defaults as Python's ``ssl.create_default_context``
narrows them (forward-secret AEAD suites first; TLS 1.3 suites as OpenSSL ships
them). A client certificate (``cert_file``/``key_file``) is sent when configured.
Turning hostname verification off (``verify_hostname = false``) still verifies the
chain.

``describe_error`` turns a failed connection into one line naming the hop and the
cause (authentication, certificate, plain text where TLS was expected ...), never
the password.
"""

from __future__ import annotations

import os
import socket
import ssl

import pika

from edge.config.settings import AmqpSettings

# Exceptions after which the connection (or its channel) is unusable: reconnect.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ChannelClosed,
    ConnectionError,
    # pika lets a failed TLS handshake (untrusted certificate, plain-text port)
    # through unwrapped; it is a connection failure like the others.
    ssl.SSLError,
)


def tls_context(amqp: AmqpSettings) -> ssl.SSLContext:
    """Client TLS context: verify the chain (and the name unless turned off),
    TLS 1.2 or newer, optional client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=amqp.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = amqp.verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if amqp.cert_file:
        context.load_cert_chain(amqp.cert_file, amqp.key_file)
    return context


def connection_parameters(amqp: AmqpSettings, client_name: str) -> pika.ConnectionParameters:
    ssl_options = None
    if amqp.tls:
        ssl_options = pika.SSLOptions(tls_context(amqp), server_hostname=amqp.server_hostname or amqp.host)
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


def _causes(exc: BaseException):
    """``exc`` and what it wraps (pika nests the socket/TLS error in its args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for linked in (e.__cause__, e.__context__, getattr(e, "exception", None)):
            if linked is not None:
                todo.append(linked)


def describe_error(exc: BaseException, amqp: AmqpSettings) -> str:
    """One line for the operator: ``amqp: <what went wrong> ... at host:port``.

    Names the user, never the password (pika's own texts carry none either).
    """
    where = f"{amqp.host}:{amqp.port}"
    causes = list(_causes(exc))
    for e in causes:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"amqp: TLS certificate rejected at {where}: {e.verify_message} (ca_file={amqp.ca_file or 'system trust store'})"
    for e in causes:
        if isinstance(e, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
            return f"amqp: authentication failed for user {amqp.username} at {where}"
        if isinstance(e, pika.exceptions.ConnectionClosedByBroker) and "ACCESS_REFUSED" in str(e):
            return f"amqp: authentication failed for user {amqp.username} at {where} ({e.reply_text})"
        if isinstance(e, pika.exceptions.ProbableAccessDeniedError):
            return f"amqp: access to vhost {amqp.vhost!r} refused for user {amqp.username} at {where}"
    for e in causes:
        if isinstance(e, ssl.SSLError):
            reason = getattr(e, "reason", None) or str(e)
            hint = " (is this a plain-text AMQP port?)" if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG") else ""
            return f"amqp: TLS handshake failed at {where}: {reason}{hint}"
    if not amqp.tls and any(isinstance(e, (pika.exceptions.IncompatibleProtocolError, pika.exceptions.StreamLostError)) for e in causes):
        return f"amqp: connection to {where} closed during the AMQP handshake: {type(exc).__name__}: {exc} (a TLS port? set amqp.tls)"
    for e in causes:
        if isinstance(e, socket.gaierror):
            return f"amqp: cannot connect to {where}: host name not resolved"
        if isinstance(e, OSError) and e.strerror:
            return f"amqp: cannot connect to {where}: {e.strerror.lower()}"
    return f"amqp: connection to {where} failed: {type(exc).__name__}: {exc}"
