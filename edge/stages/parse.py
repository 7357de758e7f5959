"""``edge parse``: Kafka raw topic -> parsed topic (one record per point) and DLQ.

A consumer group on ``<prefix>.raw``. For each raw message (``edge.parser.parse``):

- every point -> ``<prefix>.parsed``, value = the line-protocol line, key = the
  series key (measurement + sorted tags), so one series stays on one partition;
- unusable message -> ``<prefix>.dlq``: the original bytes and headers, plus
  ``dlq.*`` headers with the reason and the source topic/partition/offset;
- partly unusable message -> its usable points as above, and the original to the
  DLQ as ``partial`` with what was wrong, so nothing is silently lost.

Offsets of the raw topic are committed only after every output of a message (and of
every message before it on its partition) was acknowledged by Kafka
(``edge.kafka.offsets``). A failed delivery rewinds that partition to its first
unfinished message; redelivery downstream is harmless (InfluxDB overwrites an
identical series+time). A revoked partition is flushed and committed before it is
handed over. SIGTERM/SIGINT: stop consuming, wait (bounded) for outstanding
acknowledgements, commit, leave the group, exit 0.
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge

from edge.kafka.lag import LagGauge
from edge.core.dlq import dlq_headers
from edge.kafka.config import consumer_config, producer_config
from edge.core.lifecycle import StopSignal
from edge.kafka.offsets import OffsetTracker
from edge.parser import ParseError, TimeZones, parse, received_at_ns
from edge.parsing.metrics import count_error, count_result
from edge.core.supervision import ServiceRuntime, start_service, wait_for_kafka
from edge.settings import ParserSettings

MESSAGES_IN = Counter("edge_parser_messages", "Raw messages consumed")
POINTS_OUT = Counter("edge_parser_points", "Points produced to the parsed topic")
DLQ_RECORDS = Counter("edge_parser_dlq_records", "Raw messages sent to the DLQ", ["reason"])
DROPPED_VALUES = Counter("edge_parser_dropped_values", "NaN/infinite readings dropped")
EMPTY_POINTS = Counter("edge_parser_empty_points", "Points not emitted: no field left")
REWINDS = Counter("edge_parser_rewinds", "Partitions rewound after a failed delivery")
IN_FLIGHT = Gauge("edge_parser_in_flight", "Produced records not yet acknowledged")
LAST_COMMIT = Gauge("edge_parser_last_commit_timestamp", "Unix time of the last successful commit")
CONSUMER_LAG = Gauge("edge_parser_consumer_lag", "Raw records not yet fetched, per partition", ["partition"])

COMMIT_INTERVAL_S = 1.0
SHUTDOWN_FLUSH_S = 6.0
CONSUME_BATCH = 500


class ParserService:
    def __init__(self, settings: ParserSettings, stop: StopSignal, log, *, client_id: str = "edge-parser",
                 runtime: ServiceRuntime | None = None):
        self.settings = settings
        self.stop = stop
        self.log = log
        self.runtime = runtime or ServiceRuntime("parser", settings.metrics, log, env={})
        self.lag = LagGauge(CONSUMER_LAG)
        kafka = settings.kafka
        self.raw_topic = kafka.raw_topic
        self.parsed_topic = kafka.parsed_topic
        self.dlq_topic = kafka.dlq_topic
        self.zones = TimeZones.from_names(settings.parser.default_timezone, settings.parser.site_timezones)
        self.max_in_flight = settings.parser.max_in_flight
        self.tracker = OffsetTracker()
        self.failed: set[int] = set()  # partitions with a failed delivery, to rewind
        self.producer = Producer(producer_config(kafka, client_id, error_cb=self._on_kafka_error))
        self.consumer = Consumer(
            consumer_config(kafka, settings.parser.group_id, client_id, error_cb=self._on_kafka_error)
        )
        self._last_commit = time.monotonic()
        self._kafka_down = False

    # ------------------------------------------------------------ main loop

    def run(self) -> int:
        self.consumer.subscribe(
            [self.raw_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.log.info("started", raw=self.raw_topic, parsed=self.parsed_topic, dlq=self.dlq_topic)
        try:
            if wait_for_kafka(self.consumer, self.raw_topic, self.runtime, self.stop, self.log):
                self.runtime.ready(f"parsing {self.raw_topic} -> {self.parsed_topic}")
            while not self.stop.is_set():
                self.runtime.alive()
                self._step()
        finally:
            self._shutdown()
        return 0

    def _step(self) -> None:
        if self.tracker.in_flight >= self.max_in_flight:
            self.producer.poll(0.1)  # backpressure: wait for acknowledgements
        else:
            messages = self.consumer.consume(CONSUME_BATCH, timeout=0.2)
            for msg in messages:
                if msg.error():
                    self._on_consume_error(msg.error())
                    continue
                self._handle(msg)
            self.producer.poll(0)
        if self.failed:
            self._rewind()
        IN_FLIGHT.set(self.tracker.in_flight)
        self.lag.refresh(self.consumer)
        if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
            self._commit()

    def _handle(self, msg) -> None:
        partition, offset = msg.partition(), msg.offset()
        if partition in self.failed:
            return  # will be read again after the rewind
        MESSAGES_IN.inc()
        raw = msg.value()
        try:
            result = parse(raw if raw is not None else b"", self.zones,
                           received_at_ns=received_at_ns(msg.headers(), msg.timestamp()))
        except ParseError as exc:
            count_error(exc)
            self.tracker.begin(partition, offset, 1)
            self._dead_letter(msg, exc.reason, str(exc))
            return
        count_result(result)
        points = result.points
        outputs = len(points) + (1 if result.problems else 0)
        self.tracker.begin(partition, offset, outputs)
        delivered = self._delivery_callback(partition, offset)
        produce = self.producer.produce
        topic = self.parsed_topic
        for key, line in points:
            while True:
                try:
                    produce(topic, value=line, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    self.producer.poll(0.1)  # local queue full: serve acknowledgements
        POINTS_OUT.inc(len(points))
        if result.dropped_values:
            DROPPED_VALUES.inc(result.dropped_values)
        if result.empty_points:
            EMPTY_POINTS.inc(result.empty_points)
        if result.problems:
            self._dead_letter(msg, "partial", "; ".join(result.problems))

    def _dead_letter(self, msg, reason: str, error: str) -> None:
        DLQ_RECORDS.labels(reason=reason).inc()
        headers = dlq_headers(
            stage="parser",
            reason=reason,
            error=error,
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            original=msg.headers(),
        )
        callback = self._delivery_callback(msg.partition(), msg.offset())
        while True:
            try:
                self.producer.produce(
                    self.dlq_topic, value=msg.value(), key=msg.key(), headers=headers, on_delivery=callback
                )
                return
            except BufferError:
                self.producer.poll(0.1)

    def _delivery_callback(self, partition: int, offset: int):
        tracker = self.tracker
        failed = self.failed

        def delivered(err, _msg) -> None:
            if err is not None:
                failed.add(partition)
            else:
                tracker.done(partition, offset)

        return delivered

    # ------------------------------------------------------------ offsets

    def _commit(self) -> None:
        self._last_commit = time.monotonic()
        offsets = self.tracker.committable()
        if not offsets:
            return
        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.raw_topic, p, o) for p, o in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            # Not committed: the messages will be read again after a restart or a
            # rebalance; their outputs are idempotent downstream.
            self.log.warning("commit failed", error=str(exc))
            return
        self.tracker.mark_committed(offsets)
        LAST_COMMIT.set_to_current_time()

    def _rewind(self) -> None:
        """Wait for outstanding deliveries, then read failed partitions again from
        their first unfinished message."""
        self.producer.flush(10)
        partitions = sorted(self.failed)
        self.failed.clear()
        for partition in partitions:
            start = self.tracker.first_incomplete(partition)
            self.tracker.forget(partition)
            if start is None:
                continue
            REWINDS.inc()
            self.log.warning("delivery failed, rewinding", partition=partition, offset=start)
            try:
                self.consumer.seek(TopicPartition(self.raw_topic, partition, start))
            except KafkaException as exc:
                self.log.warning("rewind failed", partition=partition, error=str(exc))
        time.sleep(1.0)  # the next hop is struggling: do not spin

    # ------------------------------------------------------------ group events

    def _on_assign(self, _consumer, partitions: list[TopicPartition]) -> None:
        self.log.info("partitions assigned", partitions=[p.partition for p in partitions])

    def _on_revoke(self, _consumer, partitions: list[TopicPartition]) -> None:
        # Finish the revoked partitions' work and commit it before handing over.
        self.producer.flush(SHUTDOWN_FLUSH_S)
        self._commit()
        for tp in partitions:
            self.tracker.forget(tp.partition)
            self.failed.discard(tp.partition)
        self.log.info("partitions revoked", partitions=[p.partition for p in partitions])

    def _on_lost(self, _consumer, partitions: list[TopicPartition]) -> None:
        # Lost (not handed over cleanly): another member may own them already, so
        # do not commit for them; their messages are read again by the new owner.
        for tp in partitions:
            self.tracker.forget(tp.partition)
            self.failed.discard(tp.partition)
        self.log.warning("partitions lost", partitions=[p.partition for p in partitions])

    def _on_consume_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        self.log.warning("consume error", error=err.str())

    def _on_kafka_error(self, err: KafkaError) -> None:
        down = err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)
        if down and not self._kafka_down:
            self.log.warning("kafka unreachable", error=err.str())
        elif not down:
            self.log.warning("kafka error", error=err.str())
        self._kafka_down = down

    # ------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        self.log.info("stopping", signal=self.stop.signal_name)
        self.runtime.stopping()
        remaining = self.producer.flush(SHUTDOWN_FLUSH_S)
        if remaining:
            self.log.warning("stopping with unacknowledged records", records=remaining)
        self._commit()
        self.consumer.close()
        self.log.info("stopped")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="consumer group (default from [parser] group_id)")


def run(args: argparse.Namespace) -> int:
    settings = ParserSettings.load(args.config)
    if args.group_id:
        settings.parser.group_id = args.group_id
    log, stop, runtime = start_service("parser", settings)
    return ParserService(settings, stop, log, runtime=runtime).run()
