"""``edge sink``: Kafka parsed topic -> InfluxDB 1.x, committing only what InfluxDB stored.

A consumer group on ``<prefix>.parsed`` (value = one line-protocol line). Records are
held per partition and written in batches bounded by lines, bytes and age
(``edge.stages.sink_batch``), one request per partition, by ``write_concurrency`` worker threads
(at most one request per partition in flight, so commits stay in offset order)
while the main thread keeps consuming. After a batch:

- 2xx: the partitions' offsets (last written + 1) are committed.
- 400: the refused lines are found (``edge.influx.errors.find_rejected``) and go to
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
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from edge.kafka.lag import LagGauge
from edge.stages.sink_batch import BatchLimits, PartitionBuffer, body_is_clean, split_bad_records, take_counts, write_due
from edge.core.dlq import dlq_headers
from edge.influx.errors import Outcome, RetryLater, WriteResult, find_rejected, server_limit
from edge.influx.writer import InfluxWriter
from edge.kafka.config import consumer_config, producer_config
from edge.core.lifecycle import StopSignal
from edge.core.supervision import ServiceRuntime, start_service, wait_for_kafka
from edge.settings import SinkSettings

# ---------------------------------------------------------------- metrics

LINES_WRITTEN = Counter("edge_sink_lines_written", "Lines InfluxDB stored (2xx), committed after")
BATCHES_WRITTEN = Counter("edge_sink_batches_written", "Write requests InfluxDB answered 2xx or 400")
WRITE_RETRIES = Counter("edge_sink_write_retries", "Write attempts that failed and will be retried")
DLQ_RECORDS = Counter("edge_sink_dlq_records", "Records sent to the DLQ", ["reason"])
SERVER_LIMIT_DROPS = Counter("edge_sink_server_limit_drops",
                             "Lines InfluxDB dropped for a server limit (in the DLQ as influx_rejected)", ["reason"])
BUFFERED_LINES = Gauge("edge_sink_buffered_lines", "Records consumed and not yet written")
PAUSED = Gauge("edge_sink_paused", "1 while fetching is paused (InfluxDB unavailable or buffer full)")
BATCH_LINES = Histogram("edge_sink_batch_lines", "Records per write request that InfluxDB answered",
                        buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000))
WRITE_SECONDS = Histogram("edge_sink_write_seconds", "Duration of one /write request (any answer)",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
LAST_WRITE = Gauge("edge_sink_last_write_timestamp", "Unix time of the last batch InfluxDB stored")
CONSUMER_LAG = Gauge("edge_sink_consumer_lag", "Parsed records not yet fetched, per partition", ["partition"])


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


@dataclass
class WriteRequest:
    """Records of one partition, oldest first, written in one /write request.

    Filled in by a write worker: ``result`` (OK once every line is either stored or
    known to be refused), ``dead`` (records for the DLQ: record, reason, message)
    and ``written`` (lines InfluxDB stored).
    """

    buffer: PartitionBuffer
    records: list
    nbytes: int
    result: WriteResult | None = None
    dead: list = field(default_factory=list)
    written: int = 0


class WritePool:
    """A few daemon threads doing the HTTP writes while the main thread consumes.

    Daemon threads, not a ThreadPoolExecutor: a write still hanging at the stop
    deadline is abandoned (its records are not committed) instead of holding the
    process at exit.
    """

    def __init__(self, size: int, perform: Callable[[WriteRequest, InfluxWriter], None],
                 make_writer: Callable[[], InfluxWriter]):
        self.size = size
        self._perform = perform
        self._make_writer = make_writer
        self._todo: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        self.in_flight = 0
        for i in range(size):
            threading.Thread(target=self._work, name=f"influx-write-{i}", daemon=True).start()

    def _work(self) -> None:
        writer = self._make_writer()  # one HTTP session per thread
        while True:
            request = self._todo.get()
            try:
                self._perform(request, writer)
            except Exception as exc:  # a bug must not kill the worker; retried later
                request.result = WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
            self.done.put(request)

    def submit(self, request: WriteRequest) -> None:
        self.in_flight += 1
        self._todo.put(request)

    def completed(self, timeout: float | None = None) -> list[WriteRequest]:
        """Finished requests; waits up to ``timeout`` for the first one if given."""
        out: list[WriteRequest] = []
        try:
            if timeout is not None and timeout > 0 and self.in_flight:
                out.append(self.done.get(timeout=timeout))
            while True:
                out.append(self.done.get_nowait())
        except queue.Empty:
            pass
        self.in_flight -= len(out)
        return out

    @property
    def free(self) -> int:
        return self.size - self.in_flight


class Sink:
    def __init__(self, settings: SinkSettings, stop: StopSignal, log, *, client_id: str = "edge-sink",
                 runtime: ServiceRuntime | None = None):
        self.settings = settings
        self.options = settings.sink
        self.stop = stop
        self.log = log
        self.runtime = runtime or ServiceRuntime("sink", settings.metrics, log, env={})
        self.lag = LagGauge(CONSUMER_LAG)
        self.topic = settings.kafka.parsed_topic
        self.dlq_topic = settings.kafka.dlq_topic
        self.limits = BatchLimits(
            max_lines=self.options.batch_max_lines,
            max_bytes=self.options.batch_max_bytes,
            max_age_s=self.options.batch_max_age_s,
        )
        self.consumer = Consumer(consumer_config(settings.kafka, self.options.group_id, client_id))
        self.producer = Producer(producer_config(settings.kafka, f"{client_id}-dlq"))
        self.backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        self.pool = WritePool(
            max(1, self.options.write_concurrency),
            self._perform,
            lambda: InfluxWriter(settings.influxdb, connect_timeout_s=self.options.connect_timeout_s),
        )

        self.buffers: dict[int, PartitionBuffer] = {}
        # id() of a buffer with a request in flight -> (lines, bytes) of that request
        self.writing: dict[int, tuple[int, int]] = {}
        self.total_lines = 0
        self.total_bytes = 0
        self.written: dict[int, int] = {}  # partition -> next offset to commit
        self.failing: WriteResult | None = None  # last failure while InfluxDB is unavailable
        self.retry_at = 0.0
        self.paused = False
        self.pause_reason = ""
        self.database_ready = False  # set by the write workers
        self.connected_logged = False
        self.kafka_error: str | None = None
        self.stop_deadline: float | None = None
        self._resync_pause = False

    # ------------------------------------------------------------ main loop

    def run(self) -> int:
        self.log.info("starting", topic=self.topic, group_id=self.options.group_id,
                      influxdb=self.settings.influxdb.url, database=self.settings.influxdb.database,
                      write_concurrency=self.pool.size)
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        if wait_for_kafka(self.consumer, self.topic, self.runtime, self.stop, self.log):
            self.runtime.ready(f"writing {self.topic} -> {self.settings.influxdb.database}")
        while not self.stop.is_set():
            self.runtime.alive()
            try:
                self._step()
            except Exception as exc:  # never crash: log, back off, keep the offsets
                self.log.exception("sink_step_failed", error=str(exc))
                self._fail(WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}"))
        self._shutdown()
        return 0

    def _step(self) -> None:
        for request in self.pool.completed():
            self._finish(request)
        self._submit_due(time.monotonic())
        if self._enough_held():
            # Every writer is busy and the next requests are ready: let InfluxDB catch
            # up before fetching more (librdkafka's own prefetch queue is bounded).
            for request in self.pool.completed(timeout=0.5):
                self._finish(request)
            return
        messages = self.consumer.consume(num_messages=self.limits.max_lines, timeout=self._poll_timeout())
        if messages:
            self._take(messages)
        if self._resync_pause:
            self._apply_pause()
        self._update_backpressure()
        self.lag.refresh(self.consumer)

    def _enough_held(self) -> bool:
        return self.pool.free == 0 and self.total_lines >= self.limits.max_lines * (self.pool.size + 1)

    def _poll_timeout(self) -> float:
        now = time.monotonic()
        if self.pool.in_flight:
            return 0.005  # a write may finish any moment: look again soon
        timeout = 0.5
        if self.failing is not None:
            return max(0.0, min(timeout, self.retry_at - now))
        for buf in self.buffers.values():
            if buf.oldest_at is not None:
                timeout = min(timeout, buf.oldest_at + self.limits.max_age_s - now)
        return max(0.0, timeout)

    def _take(self, messages: list) -> None:
        """Append fetched records to their partition's buffer (the hot path)."""
        buffers = self.buffers
        bound_lines = self.options.max_buffered_lines
        bound_bytes = self.options.max_buffered_bytes
        lines = self.total_lines
        nbytes = self.total_bytes
        now = time.monotonic()
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
            if buf.oldest_at is None:
                buf.oldest_at = now
            buf.records.append(msg)
            buf.nbytes += size
            buf.next_offset = offset + 1
            lines += 1
            nbytes += size
        if self.kafka_error is not None and lines > self.total_lines:
            self.log.info("kafka_available", previous_error=self.kafka_error)
            self.kafka_error = None
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

    # ------------------------------------------------------------ cutting and finishing requests

    def _submit_due(self, now: float, *, everything: bool = False) -> None:
        """Hand due partitions' records to free writers, one request per partition.

        At most one request per partition is in flight, so its commits stay in order.
        While InfluxDB is failing, only one probe request goes out when the backoff
        has elapsed; the rest wait for its answer.
        """
        if self.failing is not None:
            if now < self.retry_at or self.pool.in_flight:
                return
            budget = 1
        else:
            budget = self.pool.free
        for buf in sorted(self.buffers.values(), key=lambda b: b.oldest_at or now):
            if budget <= 0:
                return
            if not buf.records or id(buf) in self.writing:
                continue
            if not everything and not write_due(len(buf.records), buf.nbytes, buf.oldest_at, now, self.limits):
                continue
            self._submit(buf, now)
            budget -= 1

    def _submit(self, buf: PartitionBuffer, now: float) -> None:
        if len(buf.records) <= self.limits.max_lines and buf.nbytes + len(buf.records) <= self.limits.max_bytes:
            n = len(buf.records)
            nbytes = buf.nbytes
        else:
            n = take_counts([[len(m) for m in buf.records]], self.limits)[0]
            nbytes = sum(len(m) for m in buf.records[:n])
        records = buf.records[:n]
        del buf.records[:n]
        buf.nbytes -= nbytes
        # What stays was fetched after what goes; its age starts now.
        buf.oldest_at = now if buf.records else None
        self.writing[id(buf)] = (n, nbytes)
        self.pool.submit(WriteRequest(buf, records, nbytes))

    def _perform(self, request: WriteRequest, writer: InfluxWriter) -> None:
        """In a write worker: write the request, find refused lines. Touches no shared state."""
        records = request.records
        values = [m.value() for m in records]
        try:
            body = b"\n".join(values)
            clean = body_is_clean(body, len(values))
        except TypeError:  # a record without a value
            clean = False
        good = records
        if not clean:
            good_idx, bad = split_bad_records(values)
            request.dead = [(records[i], "bad_record", why) for i, why in bad.items()]
            good = [records[i] for i in good_idx]
            values = [values[i] for i in good_idx]
            body = b"\n".join(values)
        if not values:
            request.result = WriteResult(Outcome.OK)
            return
        if not self.database_ready:
            result = writer.ensure_database(self.options.retention_duration)
            if not result.ok:
                request.result = result
                return
            self.database_ready = True
        with WRITE_SECONDS.time():
            result = writer.write(body)
        if result.outcome is Outcome.DATABASE_MISSING and self.settings.influxdb.create_database:
            created = writer.ensure_database(self.options.retention_duration)
            result = writer.write(body) if created.ok else created
        if result.outcome is Outcome.REJECTED:
            try:
                rejected = find_rejected(values, result, writer.write)
            except RetryLater as exc:
                request.result = exc.result
                return
            request.dead += [(good[i], "influx_rejected", why) for i, why in sorted(rejected.items())]
            request.written = len(values) - len(rejected)
            request.result = WriteResult(Outcome.OK, result.status, result.error)
            return
        if result.ok:
            request.written = len(values)
        request.result = result

    def _finish(self, request: WriteRequest) -> None:
        """Back in the main thread: commit, or put the records back for a retry."""
        buf = request.buffer
        self.writing.pop(id(buf), None)
        current = self.buffers.get(buf.partition) is buf
        ok = request.result is not None and request.result.ok
        if ok and request.dead and current:
            ok = self._dead_letter(request.dead)
        if not current:
            # Revoked (or revoked and assigned again) meanwhile: not ours to commit;
            # whoever owns the partition now reads these records again.
            return
        n = len(request.records)
        if not ok:
            buf.records[:0] = request.records
            buf.nbytes += request.nbytes
            buf.oldest_at = buf.oldest_at or time.monotonic()
            if request.result is not None and not request.result.ok:
                self._fail(request.result)
            return
        self.total_lines -= n
        self.total_bytes -= request.nbytes
        BUFFERED_LINES.set(self.total_lines)
        next_offset = request.records[-1].offset() + 1
        self.written[buf.partition] = next_offset
        self._commit([TopicPartition(self.topic, buf.partition, next_offset)], asynchronous=True)
        LINES_WRITTEN.inc(request.written)
        BATCHES_WRITTEN.inc()
        BATCH_LINES.observe(n)
        LAST_WRITE.set_to_current_time()
        for _msg, reason, why in request.dead:
            DLQ_RECORDS.labels(reason=reason).inc()
            if reason == "influx_rejected" and (limit := server_limit(why)):
                SERVER_LIMIT_DROPS.labels(reason=limit).inc()
        if self.failing is not None:
            self.log.info("resumed", after_attempts=self.backoff.attempts, last_error=self.failing.error[:300])
            self.runtime.status(f"writing {self.topic} -> {self.settings.influxdb.database}")
            self.failing = None
            self.backoff.reset()
        if not self.connected_logged:
            self.connected_logged = True
            self.log.info("connected", influxdb=self.settings.influxdb.url,
                          database=self.settings.influxdb.database,
                          retention_policy=self.settings.influxdb.retention_policy)

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
        return True

    def _commit(self, offsets: list[TopicPartition], *, asynchronous: bool) -> None:
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            # Not fatal: the next commit carries a higher offset; worst case the
            # records are written again (harmless in InfluxDB).
            self.log.warning("commit_failed", error=str(exc))

    # ------------------------------------------------------------ failure and pause

    def _fail(self, result: WriteResult) -> None:
        WRITE_RETRIES.inc()
        delay = self.backoff.next_delay()
        self.retry_at = time.monotonic() + delay
        if self.failing is None:
            self.log.warning("influxdb_unavailable", status=result.status, error=result.error[:500],
                             retry_in_s=round(delay, 2))
            self.runtime.status("InfluxDB unavailable: paused, retrying")
        self.failing = result
        self._pause(reason="influxdb_unavailable")

    def _update_backpressure(self) -> None:
        if not self.paused or self.failing is not None:
            return
        if self.total_lines < self.options.max_buffered_lines and self.total_bytes < self.options.max_buffered_bytes:
            self._resume()

    def _pause(self, reason: str) -> None:
        if self.paused and (reason == self.pause_reason or reason == "buffer_full"):
            return
        already = self.paused  # paused for a full buffer, now for InfluxDB: say so
        self.paused = True
        self.pause_reason = reason
        if not already:
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
        (self.log.info if self.pause_reason != "buffer_full" else self.log.debug)(
            "fetching_resumed", buffered_lines=self.total_lines)

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
        """Forget revoked partitions' records, including those being written now."""
        for tp in partitions:
            buf = self.buffers.pop(tp.partition, None)
            self.written.pop(tp.partition, None)
            if buf is None:
                continue
            # Records in flight are counted in total_lines until their request ends;
            # _finish() of a revoked buffer uncounts nothing, so uncount them here.
            in_flight_lines, in_flight_bytes = self.writing.get(id(buf), (0, 0))
            self.total_lines -= len(buf.records) + in_flight_lines
            self.total_bytes -= buf.nbytes + in_flight_bytes
        BUFFERED_LINES.set(self.total_lines)

    # ------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        self.stop_deadline = time.monotonic() + self.options.shutdown_flush_s
        self.log.info("stopping", signal=self.stop.signal_name, buffered_lines=self.total_lines)
        self.runtime.stopping()
        # Write what is held (one last try even while InfluxDB was failing: it may
        # be back), as long as the deadline allows; abandon what is still running.
        self.failing = None
        while time.monotonic() < self.stop_deadline:
            self._submit_due(time.monotonic(), everything=True)
            if not self.pool.in_flight:
                break
            for request in self.pool.completed(timeout=min(0.2, max(0.01, self.stop_deadline - time.monotonic()))):
                self._finish(request)
            if self.failing is not None:
                break
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.written.items()]
        self._commit(offsets, asynchronous=False)
        unwritten = self.total_lines
        try:
            self.consumer.close()
        except KafkaException as exc:
            self.log.warning("consumer_close_failed", error=str(exc))
        self.producer.flush(max(0.0, self.stop_deadline - time.monotonic()))
        self.log.info("stopped", unwritten_lines_left_uncommitted=unwritten)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="consumer group (default: sink.group_id)")


def run(args: argparse.Namespace) -> int:
    settings = SinkSettings.load(getattr(args, "config", None))
    if getattr(args, "group_id", None):
        settings.sink.group_id = args.group_id
    log, stop, runtime = start_service("sink", settings)
    return Sink(settings, stop, log, runtime=runtime).run()
