"""``edge bridge``: RabbitMQ queue -> Kafka ``<prefix>.raw``, at least once.

- Value: the AMQP body, byte for byte. The bridge never parses it.
- Headers: the AMQP metadata (``edge.bridge.headers`` lists the names).
- Key: none. The only key available without parsing is the routing key, and a
  gateway publishes every site's ticks with the same one, so keying by it would put
  the whole feed on one partition and stop the parser from scaling out. Without a
  key librdkafka spreads records over the partitions; nothing downstream needs
  per-site order (a point is identified by series and time, so InfluxDB does not
  care in which order they arrive).
- Acks: a delivery is acked to RabbitMQ only after Kafka acknowledged its record
  (acks=all, idempotent producer: ``edge.kafka.config``); ``edge.bridge.acks``
  decides what can be acked (contiguous successes with one multiple ack), nacked
  (requeue) or dead-lettered: a record Kafka refuses for good (e.g. too large) is
  republished, with its properties and ``x-edge-dlq-*`` headers saying why, to the
  durable queue ``<queue>.dlq`` on a publisher-confirm channel, and only then
  acked; if that publish fails the message is requeued. Nothing is dropped.
- Back-pressure: the AMQP prefetch bounds the deliveries waiting for Kafka. When
  Kafka is unreachable nothing is acked, so at most ``prefetch`` messages are in
  the bridge and the rest waits in RabbitMQ; a delivery that fails (after
  ``message.timeout.ms``) is requeued and consuming pauses with a capped backoff.
- RabbitMQ connection lost: reconnect with capped exponential backoff. Delivery
  tags are per channel, so the old channel's pending reports are ignored (the
  broker redelivers those messages; duplicates are harmless downstream).
- SIGTERM/SIGINT: stop consuming, flush the producer for at most
  ``shutdown_flush_s``, ack what was delivered, close (the broker requeues the
  rest), exit 0.

Logs: one line per state change. Counters: the prometheus_client objects below.
"""

from __future__ import annotations

import time
from functools import partial

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import Counter, Gauge

from edge.bridge import amqp as amqp_client
from edge.bridge.acks import AckTracker
from edge.bridge.headers import kafka_headers
from edge.bridge.dead_letter import dead_letter_properties, publish_confirmed
from edge.core.backoff import Backoff
from edge.core.lifecycle import StopSignal
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import PRODUCER_STATE_ERRORS, StageProducer
from edge.runtime.supervision import ServiceRuntime, start_service
from edge.config.settings import BridgeSettings

CLIENT_NAME = "edge-bridge"
LOOP_INTERVAL_S = 0.05

CONSUMED = Counter("edge_bridge_consumed", "AMQP deliveries received")
PRODUCED = Counter("edge_bridge_produced", "records Kafka acknowledged")
ACKED = Counter("edge_bridge_acked", "AMQP deliveries acked after Kafka acknowledged them")
NACKED = Counter("edge_bridge_nacked", "AMQP deliveries handed back to RabbitMQ (requeued)")
REJECTED = Counter("edge_bridge_rejected", "AMQP deliveries Kafka refused for good")
DEAD_LETTERED = Counter("edge_bridge_dead_lettered", "Refused deliveries republished to the AMQP dead-letter queue")
RECONNECTS = Counter("edge_bridge_reconnects", "RabbitMQ reconnections")
IN_FLIGHT = Gauge("edge_bridge_in_flight", "deliveries waiting for their Kafka delivery report")
LAST_ACK = Gauge("edge_bridge_last_ack_timestamp", "Unix time of the last ack to RabbitMQ after Kafka acknowledged")

# Delivery errors no retry can fix: the record itself is unacceptable.
_PERMANENT_ERRORS = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
}


class Bridge:
    def __init__(self, settings: BridgeSettings, stop: StopSignal, log, runtime: ServiceRuntime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or ServiceRuntime("bridge", settings.metrics, log, env={})
        self.options = settings.bridge
        self.topic = settings.kafka.raw_topic
        self.stop = stop
        self.log = log.bind(queue=settings.amqp.queue, topic=self.topic)
        self.health = KafkaHealth(self.log, self.runtime)
        self.producer = StageProducer(
            settings.kafka, CLIENT_NAME, stop=stop, supervisor=self.runtime, health=self.health,
            **{"message.max.bytes": self.options.max_message_bytes,
               "queue.buffering.max.messages": max(self.options.max_in_flight, self.options.prefetch)})
        self.producer_fatal: KafkaError | None = None
        self.connection = None
        self.channel = None
        self.consumer_tag: str | None = None
        self.tracker = AckTracker()
        self.tracker.close()
        self.refused: dict[int, tuple[bytes, object, str]] = {}  # tag -> (body, properties, error)
        self.dlq_channel = None
        self.dlq_name = amqp_client.dead_letter_queue_name(settings.amqp)
        self.delivery_backoff = Backoff(self.options.reconnect_initial_backoff_s, self.options.reconnect_max_backoff_s)
        self.paused_until: float | None = None
        self.last_delivery_error: str | None = None
        self.acked_total = 0

    # ------------------------------------------------------------ Kafka side

    def _on_delivery(self, tracker: AckTracker, tag: int, properties, err: KafkaError | None, msg) -> None:
        if err is None:
            PRODUCED.inc()
            tracker.succeeded(tag)
            self.health.reachable()
        elif err.code() in _PERMANENT_ERRORS:
            if tracker is self.tracker:
                self.refused[tag] = (msg.value(), properties, err.str())
            tracker.refused(tag)
        else:
            tracker.failed(tag)
            self.last_delivery_error = err.str()
            if err.code() in PRODUCER_STATE_ERRORS and self.producer_fatal is None:
                self.producer_fatal = err

    def _replace_producer(self) -> None:
        """After a fatal error, or once the broker no longer accepts the producer's
        idempotence state: hand every outstanding delivery back to RabbitMQ and
        start a new idempotent producer (a new producer id)."""
        fatal = self.producer_fatal or self.health.fatal
        self.log.error("kafka_producer_replaced", error=fatal.str() if fatal else "")
        self.producer.client.purge()
        self.producer.poll(0)
        if self.channel is not None and self.channel.is_open and len(self.tracker):
            NACKED.inc(len(self.tracker))
            self.channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        self.tracker.close()
        if self.channel is not None and self.channel.is_open:
            self.tracker = AckTracker()
        self.producer.replace()
        self.producer_fatal = self.health.fatal = None
        self._pause()

    # ------------------------------------------------------------ AMQP side

    def _connect(self) -> None:
        amqp = self.settings.amqp
        self.connection = amqp_client.connect(amqp, CLIENT_NAME)
        self.channel = self.connection.channel()
        amqp_client.declare_queue(self.channel, amqp)
        self.dlq_channel = self.connection.channel()
        amqp_client.declare_dead_letter_queue(self.dlq_channel, amqp)
        self.dlq_channel.confirm_delivery()
        self.refused.clear()
        self.channel.basic_qos(prefetch_count=min(self.options.prefetch, 65535))
        self.tracker = AckTracker()
        self._start_consuming()
        self.log.info("amqp_connected", host=amqp.host, port=amqp.port, prefetch=self.options.prefetch)

    def _start_consuming(self) -> None:
        self.consumer_tag = self.channel.basic_consume(self.settings.amqp.queue, self._on_message)
        self.paused_until = None

    def _pause(self) -> None:
        """A delivery failed: hand back what is not yet produced, wait, resume."""
        if self.paused_until is not None:
            return
        delay = self.delivery_backoff.next_delay()
        if self.consumer_tag is not None:
            self.channel.basic_cancel(self.consumer_tag)
            self.consumer_tag = None
        self.paused_until = time.monotonic() + delay
        self.log.warning("consuming_paused", retry_in_s=round(delay, 2), error=self.last_delivery_error)

    def _maybe_resume(self) -> None:
        if self.paused_until is not None and time.monotonic() >= self.paused_until:
            self._start_consuming()
            self.log.info("consuming_resumed")

    def _abandon_channel(self) -> None:
        """The connection is gone: its unacked deliveries are the broker's again."""
        self.tracker.close()
        self.refused.clear()
        self.consumer_tag = None
        self.paused_until = None
        if self.connection is not None and self.connection.is_open:
            try:
                self.connection.close()
            except Exception:  # already broken; nothing left to hand back
                pass
        self.connection = self.channel = self.dlq_channel = None

    def _on_message(self, _channel, method, properties, body: bytes) -> None:
        CONSUMED.inc()
        tag = method.delivery_tag
        tracker = self.tracker
        tracker.delivered(tag)
        headers = kafka_headers(method, properties)
        on_delivery = partial(self._on_delivery, tracker, tag, properties)
        try:
            if not self.producer.produce(self.topic, body, headers=headers, on_delivery=on_delivery):
                tracker.failed(tag)  # stopping: handed back to RabbitMQ
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in _PERMANENT_ERRORS:
                self.refused[tag] = (body, properties, err.str())
                tracker.refused(tag)
            else:
                tracker.failed(tag)

    def _settle(self) -> None:
        settlement = self.tracker.settle()
        if settlement:
            for tag in settlement.reject:
                self._dead_letter(tag)
            for tag in settlement.nack:
                self.channel.basic_nack(delivery_tag=tag, multiple=False, requeue=True)
            if settlement.ack_upto is not None:
                self.channel.basic_ack(delivery_tag=settlement.ack_upto, multiple=True)
                self.delivery_backoff.reset()
            ACKED.inc(settlement.acked)
            self.acked_total += settlement.acked
            if settlement.acked:
                LAST_ACK.set_to_current_time()
            NACKED.inc(len(settlement.nack))
            REJECTED.inc(len(settlement.reject))
            if settlement.nack:
                self._pause()
        IN_FLIGHT.set(len(self.tracker))

    def _dead_letter(self, tag: int) -> None:
        """Republish a message Kafka refused for good to ``<queue>.dlq`` (confirmed),
        then ack it; if the republish fails, requeue it instead."""
        body, properties, error = self.refused.pop(tag, (None, None, "unknown"))
        if body is None:
            self.channel.basic_nack(delivery_tag=tag, multiple=False, requeue=True)
            return
        props = dead_letter_properties(properties, reason="kafka_refused", error=error,
                                       source_queue=self.settings.amqp.queue)
        failure = publish_confirmed(self.dlq_channel, self.dlq_name, body, props)
        if failure is not None:
            self.log.error("dead_letter_failed", queue=self.dlq_name, error=failure)
            self.channel.basic_nack(delivery_tag=tag, multiple=False, requeue=True)
            return
        self.channel.basic_ack(delivery_tag=tag, multiple=False)
        DEAD_LETTERED.inc()
        self.log.error("message_dead_lettered", queue=self.dlq_name, message_id=props.message_id, error=error)

    # ------------------------------------------------------------ loop

    def _consume(self) -> None:
        while not self.stop.is_set():
            self.runtime.alive()
            self._maybe_resume()
            self.connection.process_data_events(time_limit=LOOP_INTERVAL_S)
            self.producer.poll(0)
            if self.producer_fatal is not None or self.health.fatal is not None:
                self._replace_producer()
            self._settle()

    def run(self) -> int:
        backoff = Backoff(self.options.reconnect_initial_backoff_s, self.options.reconnect_max_backoff_s)
        connected_before = False
        while not self.stop.is_set():
            try:
                self._connect()
                if connected_before:
                    RECONNECTS.inc()
                connected_before = True
                backoff.reset()
                self.runtime.ready(f"bridging {self.settings.amqp.queue} -> {self.topic}")
                self._consume()
            except amqp_client.CONNECTION_ERRORS as exc:
                self._abandon_channel()
                delay = backoff.next_delay()
                self.log.warning("amqp_disconnected", error=amqp_client.describe_error(exc, self.settings.amqp),
                                 retry_in_s=round(delay, 2))
                self.runtime.status("RabbitMQ unreachable: reconnecting")
                self._wait(delay)
        self._shutdown()
        return 0

    def _wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` passed or SIGTERM, keeping the watchdog fed."""
        deadline = time.monotonic() + seconds
        while not self.stop.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            self.runtime.alive()
            if time.monotonic() >= deadline:
                return

    def _shutdown(self) -> None:
        self.log.info("stopping", signal=self.stop.signal_name)
        self.runtime.stopping()
        deadline = time.monotonic() + self.options.shutdown_flush_s
        channel_ok = self.channel is not None and self.channel.is_open
        try:
            if channel_ok and self.consumer_tag is not None:
                self.channel.basic_cancel(self.consumer_tag)
                self.consumer_tag = None
            while len(self.producer) and time.monotonic() < deadline:
                self.producer.flush(max(0.0, min(0.5, deadline - time.monotonic())))
            self.producer.poll(0)
            if channel_ok:
                self._settle()
        except amqp_client.CONNECTION_ERRORS as exc:
            self.log.warning("amqp_lost_while_stopping", error=f"{type(exc).__name__}: {exc}")
        unsettled = len(self.tracker)
        # Whatever Kafka has not confirmed goes back to RabbitMQ with the channel.
        self.producer.client.purge()
        self.producer.poll(0)
        self._abandon_channel()
        self.log.info("stopped", handed_back=unsettled, acked=self.acked_total)


def serve(config: str | None) -> int:
    """Run the bridge until stopped; the exit code (``edge bridge``)."""
    settings = BridgeSettings.load(config)
    log, stop, runtime = start_service("bridge", settings)
    log.info("starting", queue=settings.amqp.queue, topic=settings.kafka.raw_topic, bootstrap=settings.kafka.bootstrap_servers)
    return Bridge(settings, stop, log, runtime=runtime).run()
