"""``[kafka.client]`` checked by librdkafka itself, without connecting.

librdkafka validates every property name and value when a client is created
(unknown names, values out of range, an unsupported SASL mechanism, an
``ssl.ca.location`` it cannot load) and connects only to the brokers named in
``bootstrap.servers``. So the check creates each kind of client the services
create (producer, consumer, admin), with the project's own configuration
(``edge.kafka.config``) but no ``bootstrap.servers``, and closes it at once: the
same verdict a service would get at start, and nothing leaves the host.

For an unknown name, the closest property librdkafka knows is offered; the list
comes from librdkafka's own table (``rd_kafka_conf_properties_show``).
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
from collections.abc import Iterator
from functools import lru_cache

from edge.config.problems import did_you_mean
from edge.config.settings import KafkaSettings

_NAMED = re.compile(r'configuration property "([^"]+)"|property: "([^"]+)"', re.IGNORECASE)
CHECK_CLIENT_ID = "edge-config-check"


class _Discard:
    """A logger for the throwaway clients (they warn that no broker is set)."""

    def log(self, *args, **kwargs) -> None:
        pass


def _clients(kafka: KafkaSettings) -> Iterator[tuple[str, type, dict]]:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    from edge.kafka.config import admin_config, consumer_config, producer_config

    yield "producer", Producer, producer_config(kafka, CHECK_CLIENT_ID)
    yield "consumer", Consumer, consumer_config(kafka, CHECK_CLIENT_ID, CHECK_CLIENT_ID)
    yield "admin", AdminClient, admin_config(kafka, CHECK_CLIENT_ID)


def refusals(kafka: KafkaSettings) -> list[tuple[str | None, str]]:
    """(property librdkafka named or None, its message), each once. librdkafka
    stops at the first refusal: a named property is taken out and the client
    created again, so every refused property is found in one run."""
    found: dict[tuple[str | None, str], None] = {}
    for _kind, make, conf in _clients(kafka):
        conf = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
        conf["logger"] = _Discard()
        while True:
            refused = _create_and_close(make, conf)
            if refused is None:
                break
            found[refused] = None
            if refused[0] not in conf:
                break
            del conf[refused[0]]
    return list(found)


def _create_and_close(make, conf: dict) -> tuple[str | None, str] | None:
    from confluent_kafka import KafkaException

    try:
        client = make(conf)
    except KafkaException as exc:
        message = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
        message = re.sub(r"^Failed to create \w+: ", "", message.strip())
        m = _NAMED.search(message)
        return ((m.group(1) or m.group(2)) if m else None, message)
    close = getattr(client, "close", None)
    if close is not None:
        close()
    return None


def suggestion(name: str) -> str | None:
    return did_you_mean(name, librdkafka_properties())


@lru_cache(maxsize=1)
def librdkafka_properties() -> frozenset[str]:
    """Every property name librdkafka accepts (its CONFIGURATION table), or an
    empty set when the table cannot be read (then no suggestion is offered)."""
    try:
        import confluent_kafka.cimpl as cimpl

        lib = ctypes.CDLL(cimpl.__file__)  # resolves into the bundled librdkafka
        libc = ctypes.CDLL(None)
        libc.fdopen.restype = ctypes.c_void_p
        libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
        with tempfile.TemporaryFile() as f:
            stream = libc.fdopen(os.dup(f.fileno()), b"w")
            if not stream:
                return frozenset()
            lib.rd_kafka_conf_properties_show(stream)
            libc.fclose(stream)
            f.seek(0)
            table = f.read().decode("utf-8", "replace")
    except (OSError, AttributeError, ImportError):
        return frozenset()
    names = (line.split("|", 1)[0].strip() for line in table.splitlines() if "|" in line)
    return frozenset(n for n in names if n and n != "Property" and not n.startswith("-"))
