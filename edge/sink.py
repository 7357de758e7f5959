"""``edge sink``: Kafka parsed topic -> InfluxDB 1.x, committing only what InfluxDB stored.

A consumer group on ``<prefix>.parsed`` (value = one line-protocol line). Records are
held per partition and written in batches bounded by lines, bytes and age
(``edge.batch``). After a batch:

- 2xx: the partitions' offsets (last written + 1) are committed.
- 400: the refused lines are found (``edge.influx_errors.find_rejected``) and go to
  ``<prefix>.dlq`` (reason ``influx_rejected``, InfluxDB's message, source offset);
  the rest is stored; the offsets are committed once the DLQ acknowledged.
- InfluxDB down, 5xx, auth or config trouble: every partition is paused, the batch is
  retried with capped exponential backoff (jittered), then fetching resumes. Nothing
  is committed meanwhile; memory stays bounded because fetching stops (records past
  the buffer bound are dropped and their partition seeks back to them).

A record that is not one UTF-8 line goes to the DLQ as ``bad_record``.

Rebalance: a revoked partition's unwritten records are dropped (its new owner gets
them again from the committed offset; InfluxDB overwrites an identical series+time,
so a second write is harmless). SIGTERM/SIGINT: write what can be written within
``shutdown_flush_s``, commit, leave the group, exit 0.

Retry is a small loop of our own rather than tenacity: the wait must not block the
consumer (it keeps polling for rebalances and the stop signal while it waits), so
the backoff is a deadline checked by the loop, not a sleep around a call.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge

from edge import logs
from edge.batch import BatchLimits, PartitionBuffer, body_is_clean, split_bad_records, take_counts, write_due
from edge.dlq import dlq_headers
from edge.influx_errors import Outcome, RetryLater, WriteResult, find_rejected
from edge.influx_writer import InfluxWriter
from edge.kafka_config import consumer_config, producer_config
from edge.lifecycle import StopSignal
from edge.settings import SinkSettings

# ---------------------------------------------------------------- metrics

LINES_WRITTEN = Counter("edge_sink_lines_written", "Lines InfluxDB stored (2xx), committed after")
BATCHES_WRITTEN = Counter("edge_sink_batches_written", "Write requests InfluxDB answered 2xx or 400")
WRITE_RETRIES = Counter("edge_sink_write_retries", "Write attempts that failed and will be retried")
DLQ_RECORDS = Counter("edge_sink_dlq_records", "Records sent to the DLQ", ["reason"])
BUFFERED_LINES = Gauge("edge_sink_buffered_lines", "Records consumed and not yet written")
PAUSED = Gauge("edge_sink_paused", "1 while fetching is paused (InfluxDB unavailable or buffer full)")


class Backoff:
    """Capped exponential backoff with jitter: initial, 2x, 4x ... up to maximum."""

    def __init__(self, initial_s: float, maximum_s: float, rng: random.Random | None = None):
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


class _Abandoned(Exception):
    """A write still running when the shutdown deadline passed."""


class Sink:
    def __init__(self, settings: SinkSettings, stop: StopSignal, log, *, client_id: str = "edge-sink"):
        self.settings = settings
        self.options = settings.sink
        self.stop = stop
        self.log = log
        self.topic = settings.kafka.parsed_topic
        self.dlq_topic = settings.kafka.dlq_topic
        self.limits = BatchLimits(
            max_lines=self.options.batch_max_lines,
            max_bytes=self.options.batch_max_bytes,
            max_age_s=self.options.batch_max_age_s,
        )
        self.consumer = Consumer(consumer_config(settings.kafka, self.options.group_id, client_id))
        self.producer = Producer(producer_config(settings.kafka, f"{client_id}-dlq"))
        self.writer = InfluxWriter(settings.influxdb, connect_timeout_s=self.options.connect_timeout_s)
        self.backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)

        self.buffers: dict[int, PartitionBuffer] = {}
        self.total_lines = 0
        self.total_bytes = 0
        self.oldest_at: float | None = None
        self.written: dict[int, int] = {}  # partition -> next offset to commit
        self.committed: dict[int, int] = {}
        self.failing: WriteResult | None = None  # last failure while InfluxDB is unavailable
        self.retry_at = 0.0
        self.paused = False
        self.database_ready = False
        self.kafka_error: str | None = None
        self.stop_deadline: float | None = None
        self._resync_pause = False

    # ------------------------------------------------------------ main loop

    def run(self) -> int:
        self.log.info("starting", topic=self.topic, group_id=self.options.group_id,
                      influxdb=self.settings.influxdb.url, database=self.settings.influxdb.database)
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        while not self.stop.is_set():
            try:
                self._step()
            except Exception as exc:  # never crash: log, back off, keep the offsets
                self.log.exception("sink_step_failed", error=str(exc))
                self._fail(WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}"))
        self._shutdown()
        return 0

    def _step(self) -> None:
        now = time.monotonic()
        timeout = 0.5
        if self.failing is not None:
            timeout = max(0.0, min(timeout, self.retry_at - now))
        elif self.oldest_at is not None:
            timeout = max(0.0, min(timeout, self.oldest_at + self.limits.max_age_s - now))
        messages = self.consumer.consume(num_messages=self.limits.max_lines, timeout=timeout)
        if messages:
            self._take(messages)
        if self._resync_pause:
            self._apply_pause()
        now = time.monotonic()
        if self.failing is not None:
            if now >= self.retry_at:
                self._write_all()
        elif write_due(self.total_lines, self.total_bytes, self.oldest_at, now, self.limits):
            self._write_all()
        self._update_backpressure()

    def _take(self, messages: list) -> None:
        """Append fetched records to their partition's buffer (the hot path)."""
        buffers = self.buffers
        bound_lines = self.options.max_buffered_lines
        bound_bytes = self.options.max_buffered_bytes
        lines = self.total_lines
        nbytes = self.total_bytes
        seek_back: dict[int, int] = {}
        for msg in messages:
            if msg.error() is not None:
                self._on_kafka_error(msg.error())
                continue
            partition = msg.partition()
            buf = buffers.get(partition)
            if buf is None:  # revoked meanwhile
                continue
            offset = msg.offset()
            if offset < buf.next_offset:  # fetched again after a pause or seek
                continue
            if partition in seek_back or lines >= bound_lines or nbytes >= bound_bytes:
                # Over the memory bound: drop it and fetch it again later.
                seek_back.setdefault(partition, offset)
                continue
            size = len(msg)
            buf.records.append(msg)
            buf.nbytes += size
            buf.next_offset = offset + 1
            lines += 1
            nbytes += size
        if self.kafka_error is not None and lines > self.total_lines:
            self.log.info("kafka_available", previous_error=self.kafka_error)
            self.kafka_error = None
        if self.oldest_at is None and lines > self.total_lines:
            self.oldest_at = time.monotonic()
        self.total_lines = lines
        self.total_bytes = nbytes
        BUFFERED_LINES.set(lines)
        for partition, offset in seek_back.items():
            self._pause(reason="buffer_full")
            try:
                self.consumer.seek(TopicPartition(self.topic, partition, offset))
            except KafkaException as exc:
                # The partition left us meanwhile: its new owner starts from the commit.
                self.log.debug("seek_failed", partition=partition, error=str(exc))

    # ------------------------------------------------------------ writing

    def _write_all(self) -> bool:
        """Write every held record, one bounded request at a time; False on failure."""
        while self.total_lines > 0:
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                return False
            if not self._write_one_request():
                return False
        self.oldest_at = None
        if self.failing is not None:
            self.log.info("resumed", after_attempts=self.backoff.attempts, last_error=self.failing.error[:300])
            self.failing = None
            self.backoff.reset()
        return True

    def _plan(self) -> list[tuple[PartitionBuffer, int]]:
        buffers = [b for b in self.buffers.values() if b.records]
        if self.total_lines <= self.limits.max_lines and self.total_bytes + self.total_lines <= self.limits.max_bytes:
            return [(b, len(b.records)) for b in buffers]
        counts = take_counts([[len(m) for m in b.records] for b in buffers], self.limits)
        return [(b, n) for b, n in zip(buffers, counts) if n]

    def _write_one_request(self) -> bool:
        if not self.database_ready and not self._ensure_database():
            return False
        plan = self._plan()
        records = [m for buf, n in plan for m in buf.records[:n]]
        values = [m.value() for m in records]
        try:
            body = b"\n".join(values)
            clean = body_is_clean(body, len(values))
        except TypeError:  # a record without a value
            clean = False
        bad: dict[int, str] = {}
        good = records
        if not clean:
            good_idx, bad = split_bad_records(values)
            good = [records[i] for i in good_idx]
            values = [values[i] for i in good_idx]
            body = b"\n".join(values)

        dead: list[tuple[object, str, str]] = [(records[i], "bad_record", why) for i, why in bad.items()]
        if values:
            result = self._write(body)
            if result.outcome is Outcome.DATABASE_MISSING and self.settings.influxdb.create_database:
                self.database_ready = False
                if not self._ensure_database():
                    return False
                result = self._write(body)
            if result.outcome is Outcome.REJECTED:
                try:
                    rejected = find_rejected(values, result, self._write)
                except RetryLater as exc:
                    self._fail(exc.result)
                    return False
                dead += [(good[i], "influx_rejected", why) for i, why in sorted(rejected.items())]
                written = len(values) - len(rejected)
            elif result.ok:
                written = len(values)
            else:
                self._fail(result)
                return False
        else:
            written = 0
        if dead and not self._dead_letter(dead):
            return False
        self._advance(plan)
        LINES_WRITTEN.inc(written)
        BATCHES_WRITTEN.inc()
        return True

    def _write(self, body: bytes) -> WriteResult:
        try:
            return self._interruptible(self.writer.write, body)
        except _Abandoned:
            return WriteResult(Outcome.RETRY, None, "write abandoned at shutdown")

    def _interruptible(self, call: Callable, *args):
        """Run ``call`` in a helper thread; give up on it once the shutdown deadline passed.

        A write to an InfluxDB that hangs must not keep the process past its stop
        deadline: the abandoned request's records are simply not committed.
        """
        box: dict = {}

        def target() -> None:
            try:
                box["result"] = call(*args)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        thread = threading.Thread(target=target, name="influx-write", daemon=True)
        thread.start()
        while True:
            thread.join(0.1)
            if not thread.is_alive():
                break
            if self.stop.is_set():
                self._note_stop()
                if time.monotonic() >= self.stop_deadline:
                    raise _Abandoned()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _ensure_database(self) -> bool:
        try:
            result = self._interruptible(self.writer.ensure_database, self.options.retention_duration)
        except _Abandoned:
            return False
        if not result.ok:
            self._fail(result)
            return False
        self.database_ready = True
        self.log.info("connected", influxdb=self.settings.influxdb.url, database=self.settings.influxdb.database,
                      retention_policy=self.settings.influxdb.retention_policy)
        return True

    def _dead_letter(self, dead: list[tuple[object, str, str]]) -> bool:
        """Produce the records to the DLQ and wait for every acknowledgement."""
        failures: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        for msg, reason, why in dead:
            headers = dlq_headers(
                stage="sink", reason=reason, error=why, topic=msg.topic(), partition=msg.partition(),
                offset=msg.offset(), original=msg.headers(),
            )
            while True:
                try:
                    self.producer.produce(self.dlq_topic, value=msg.value(), key=msg.key(), headers=headers,
                                          on_delivery=delivered)
                    break
                except BufferError:
                    self.producer.poll(0.1)
        timeout = self.options.dlq_timeout_s
        if self.stop_deadline is not None:
            timeout = max(0.1, min(timeout, self.stop_deadline - time.monotonic()))
        remaining = self.producer.flush(timeout)
        if remaining or failures:
            error = failures[0] if failures else f"{remaining} DLQ records not acknowledged in time"
            self._fail(WriteResult(Outcome.RETRY, None, f"DLQ produce failed: {error}"))
            return False
        for _msg, reason, _why in dead:
            DLQ_RECORDS.labels(reason=reason).inc()
        return True

    def _advance(self, plan: list[tuple[PartitionBuffer, int]]) -> None:
        """Drop the written records and commit their partitions' next offsets."""
        offsets = []
        for buf, n in plan:
            last = buf.records[n - 1].offset()
            dropped_bytes = buf.nbytes if n == len(buf.records) else sum(len(m) for m in buf.records[:n])
            del buf.records[:n]
            buf.nbytes -= dropped_bytes
            self.total_lines -= n
            self.total_bytes -= dropped_bytes
            self.written[buf.partition] = last + 1
            offsets.append(TopicPartition(self.topic, buf.partition, last + 1))
        BUFFERED_LINES.set(self.total_lines)
        self._commit(offsets, asynchronous=True)

    def _commit(self, offsets: list[TopicPartition], *, asynchronous: bool) -> None:
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            # Not fatal: the next commit carries a higher offset; worst case the
            # records are written again (harmless in InfluxDB).
            self.log.warning("commit_failed", error=str(exc))
            return
        for tp in offsets:
            self.committed[tp.partition] = tp.offset

    # ------------------------------------------------------------ failure and pause

    def _fail(self, result: WriteResult) -> None:
        WRITE_RETRIES.inc()
        delay = self.backoff.next_delay()
        self.retry_at = time.monotonic() + delay
        if self.failing is None:
            self.log.warning("influxdb_unavailable", status=result.status, error=result.error[:500],
                             retry_in_s=round(delay, 2))
        self.failing = result
        self._pause(reason="influxdb_unavailable")

    def _update_backpressure(self) -> None:
        if not self.paused or self.failing is not None:
            return
        if self.total_lines < self.options.max_buffered_lines and self.total_bytes < self.options.max_buffered_bytes:
            self._resume()

    def _pause(self, reason: str) -> None:
        if self.paused:
            return
        self.paused = True
        PAUSED.set(1)
        self._apply_pause()
        # Buffer-full pauses come and go under load: not worth an info line each.
        (self.log.info if reason != "buffer_full" else self.log.debug)("paused", reason=reason,
                                                                       buffered_lines=self.total_lines)

    def _apply_pause(self) -> None:
        self._resync_pause = False
        try:
            assignment = self.consumer.assignment()
            if self.paused:
                self.consumer.pause(assignment)
            else:
                self.consumer.resume(assignment)
        except KafkaException as exc:
            self.log.debug("pause_resume_failed", error=str(exc))
            self._resync_pause = True

    def _resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        PAUSED.set(0)
        self._apply_pause()
        self.log.info("fetching_resumed", buffered_lines=self.total_lines)

    def _on_kafka_error(self, err: KafkaError) -> None:
        text = f"{err.name()}: {err.str()}"
        if self.kafka_error != text:
            self.kafka_error = text
            self.log.warning("kafka_error", error=text, fatal=err.fatal())

    # ------------------------------------------------------------ rebalance

    def _on_assign(self, _consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.buffers[tp.partition] = PartitionBuffer(tp.partition)
        # New partitions of a paused sink are paused too, once they are assigned.
        self._resync_pause = self._resync_pause or self.paused
        self.log.info("partitions_assigned", partitions=sorted(tp.partition for tp in partitions))

    def _on_revoke(self, _consumer, partitions: list[TopicPartition]) -> None:
        offsets = [
            TopicPartition(self.topic, tp.partition, self.written[tp.partition])
            for tp in partitions
            if tp.partition in self.written
        ]
        self._commit(offsets, asynchronous=False)
        self._drop(partitions)
        self.log.info("partitions_revoked", partitions=sorted(tp.partition for tp in partitions))

    def _on_lost(self, _consumer, partitions: list[TopicPartition]) -> None:
        self._drop(partitions)
        self.log.warning("partitions_lost", partitions=sorted(tp.partition for tp in partitions))

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            buf = self.buffers.pop(tp.partition, None)
            self.written.pop(tp.partition, None)
            self.committed.pop(tp.partition, None)
            if buf is not None:
                self.total_lines -= len(buf.records)
                self.total_bytes -= buf.nbytes
        if self.total_lines == 0:
            self.oldest_at = None
        BUFFERED_LINES.set(self.total_lines)

    # ------------------------------------------------------------ shutdown

    def _note_stop(self) -> None:
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.options.shutdown_flush_s

    def _shutdown(self) -> None:
        self._note_stop()
        self.log.info("stopping", signal=self.stop.signal_name, buffered_lines=self.total_lines)
        if self.total_lines:
            # One last attempt even while InfluxDB was failing: it may be back.
            self._write_all()
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.written.items()]
        self._commit(offsets, asynchronous=False)
        unwritten = self.total_lines
        try:
            self.consumer.close()
        except KafkaException as exc:
            self.log.warning("consumer_close_failed", error=str(exc))
        self.producer.flush(max(0.0, self.stop_deadline - time.monotonic()))
        self.writer.close()
        self.log.info("stopped", unwritten_lines_left_uncommitted=unwritten)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="consumer group (default: sink.group_id)")


def run(args: argparse.Namespace) -> int:
    settings = SinkSettings.load(getattr(args, "config", None))
    if getattr(args, "group_id", None):
        settings.sink.group_id = args.group_id
    log = logs.configure(settings.log, "sink")
    stop = StopSignal().install()
    if settings.metrics.enabled and settings.metrics.port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics.port, addr=settings.metrics.host)
    return Sink(settings, stop, log).run()
