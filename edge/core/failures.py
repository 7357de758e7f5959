"""Library errors an operator can cause, as ``OperatorError``s with one clear line.

The command line (``edge.cli``) asks ``operator_error(exc)`` about any exception a
command let through; None means "a bug": it keeps its traceback. What is
translated is what a wrong setting or an unavailable hop produces:

- Kafka: no broker answers (``_TRANSPORT``, all brokers down, timed out, name not
  resolved), authentication -> unreachable (4); a property librdkafka refuses ->
  configuration (3);
- AMQP (pika) connection failures and socket errors -> unreachable (4);
- HTTP (requests, InfluxDB) connection refused, unknown host, timeout ->
  unreachable (4);
- AWS (botocore): no credentials or unknown profile -> configuration (3); a
  missing bucket -> not found (5); refused credentials or permissions, an
  endpoint that does not answer -> unreachable (4).

Each message says what and where (host, URL, bucket), never a secret.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from edge.core.errors import ConfigError, NotFoundError, OperatorError, UnreachableError

AWS_CREDENTIALS_HINT = (
    "AWS_SHARED_CREDENTIALS_FILE (the units load /etc/edge/credentials/aws_credentials), "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a [s3]/[athena] profile, or an instance role"
)


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it (``__cause__``, ``__context__``, wrapped args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for linked in (e.__cause__, e.__context__):
            if linked is not None:
                todo.append(linked)


def socket_reason(exc: BaseException) -> str | None:
    """What went wrong on the network, in words, if anything in the chain says."""
    for e in chain(exc):
        if isinstance(e, socket.gaierror):
            return "host name not resolved"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate rejected: {e.verify_message}"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, (TimeoutError, socket.timeout)):
            return "timed out"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    return None


def operator_error(exc: BaseException) -> OperatorError | None:
    for translate in (_kafka, _aws, _http, _amqp, _socket):
        found = translate(exc)
        if found is not None:
            return found
    return None


def _kafka(exc: BaseException) -> OperatorError | None:
    try:
        from confluent_kafka import KafkaError, KafkaException
    except ImportError:  # pragma: no cover - a pinned dependency
        return None
    if not isinstance(exc, KafkaException) or not exc.args or not isinstance(exc.args[0], KafkaError):
        return None
    err = exc.args[0]
    if err.code() == KafkaError._INVALID_ARG:
        return ConfigError(f"kafka: {err.str()} (check [kafka.client] with `edge config check`)")
    if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return UnreachableError(f"kafka: authentication failed: {err.str()}")
    unreachable = {
        KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
        KafkaError._RESOLVE, KafkaError._SSL, KafkaError.REQUEST_TIMED_OUT,
    }
    if err.code() in unreachable:
        return UnreachableError(f"kafka: no broker answered: {err.str()}")
    return None


def _aws(exc: BaseException) -> OperatorError | None:
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover
        return None
    for e in chain(exc):
        if isinstance(e, (boto.NoCredentialsError, boto.PartialCredentialsError)):
            return ConfigError(f"AWS: no usable credentials ({e}); set one of {AWS_CREDENTIALS_HINT}")
        if isinstance(e, boto.ProfileNotFound):
            return ConfigError(f"AWS: {e}")
        if isinstance(e, boto.EndpointConnectionError):
            return UnreachableError(f"AWS: cannot reach {e.kwargs.get('endpoint_url', 'the endpoint')}")
        if isinstance(e, boto.ClientError):
            return _aws_refusal(e)
    return None


def _aws_refusal(e) -> OperatorError:
    error = e.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = error.get("Message") or code
    operation = getattr(e, "operation_name", "request")
    if code == "NoSuchBucket" or (code == "404" and operation == "HeadBucket"):
        bucket = error.get("BucketName")
        return NotFoundError(f"S3 bucket {bucket + ' ' if bucket else ''}does not exist ([s3] bucket)")
    if code in _AWS_REFUSALS:
        return UnreachableError(f"AWS refused {operation}: {code}: {message}")
    return UnreachableError(f"AWS {operation} failed: {code}: {message}")


_AWS_REFUSALS = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidClientTokenId",
    "UnrecognizedClientException", "AccessDenied", "AccessDeniedException", "403",
}


def _http(exc: BaseException) -> OperatorError | None:
    try:
        import requests
    except ImportError:  # pragma: no cover
        return None
    for e in chain(exc):
        if isinstance(e, (requests.ConnectionError, requests.Timeout)):
            request = getattr(e, "request", None)
            url = getattr(request, "url", None) or ""
            parts = urlsplit(url)
            where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the HTTP server"
            reason = socket_reason(e) or ("timed out" if isinstance(e, requests.Timeout) else type(e).__name__)
            return UnreachableError(f"cannot reach {where}: {reason}")
    return None


def _amqp(exc: BaseException) -> OperatorError | None:
    try:
        import pika
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, pika.exceptions.AMQPConnectionError):
        reason = socket_reason(exc) or str(exc) or type(exc).__name__
        return UnreachableError(f"amqp: cannot connect: {reason}")
    return None


def _socket(exc: BaseException) -> OperatorError | None:
    if isinstance(exc, (socket.gaierror, ConnectionRefusedError, ConnectionResetError)):
        return UnreachableError(f"cannot connect: {socket_reason(exc)}")
    return None
