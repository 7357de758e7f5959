"""Kafka reachability as the services see it: one log line per state change.

Every librdkafka client of a service gets ``KafkaHealth.on_error`` as its
``error_cb``. While no broker answers, librdkafka reports the same error many
times a second; this turns that into ``kafka_unreachable`` once and
``kafka_reachable`` once the service hears from a broker again (the caller says
when: a fetched record, an acknowledged delivery). A fatal error (e.g. a fenced
static group member) is kept for the service's loop to act on.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

UNREACHABLE_ERRORS = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})


def describe(err: KafkaError) -> str:
    if err.code() == KafkaError._AUTHENTICATION:
        return f"kafka: SASL authentication failed: {err.str()}"
    return f"{err.name()}: {err.str()}"


class KafkaHealth:
    def __init__(self, log, supervisor=None):
        self.log = log
        self.supervisor = supervisor
        self.unreachable = False
        self.fatal: KafkaError | None = None
        self._last_error: str | None = None

    def on_error(self, err: KafkaError) -> None:
        text = describe(err)
        if err.fatal():
            if self.fatal is None:
                self.fatal = err
                self.log.error("kafka_fatal_error", error=text)
            return
        if err.code() in UNREACHABLE_ERRORS or err.code() == KafkaError._AUTHENTICATION:
            if not self.unreachable:
                self.unreachable = True
                (self.log.error if err.code() == KafkaError._AUTHENTICATION else self.log.warning)(
                    "kafka_unreachable", error=text)
                if self.supervisor is not None:
                    self.supervisor.status("Kafka unreachable")
            return
        if text != self._last_error:
            self._last_error = text
            self.log.warning("kafka_error", error=text)

    def reachable(self) -> None:
        """The service heard from a broker: say so once after an outage."""
        if self.unreachable:
            self.unreachable = False
            self._last_error = None
            self.log.info("kafka_reachable")
