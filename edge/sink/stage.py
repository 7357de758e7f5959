"""``edge sink``: Kafka parsed topic -> InfluxDB 1.x, committing only what InfluxDB stored.

The sink's own protocol; consuming, committing, rebalancing and stopping are
``edge.kafka.runner``'s. Records (value = one line-protocol line) are held per
partition and written in batches bounded by lines, bytes and age
(``edge.sink.batch``), by ``write_concurrency`` worker threads
(``edge.sink.write_pool``) while the main thread keeps consuming. One request
takes the held records of every partition that has no request in flight (at
most one per partition, so positions only move forward), oldest first: at field
rates a message's points spread over most partitions, and one request for all of
them is queryable at once instead of after the slowest of six. Under load a
request fills from one partition and the writers share the partitions.
After a batch (``edge.sink.write``):

- 2xx: each partition's position (its last written + 1) may be committed.
- 400: the refused lines go to ``<prefix>.dlq`` (reason ``influx_rejected``,
  InfluxDB's message, source offset); the rest is stored; the position moves once
  the DLQ acknowledged.
- InfluxDB down, 5xx, auth or config trouble: the sink says it is blocked
  (``influxdb_unavailable``; ``dlq_unavailable`` when it is the DLQ that does not
  acknowledge), the runner pauses fetching, the batch is retried with capped
  jittered backoff (one probe request at a time), then fetching resumes. Nothing
  moves meanwhile.

Memory stays bounded: at ``max_buffered_lines`` / ``max_buffered_bytes`` the sink
reports itself full and the runner pauses fetching until it is down to 75 %
(``edge.core.flow``); records fetched past the bound are let go and read again
(a rewind the runner seeks to).

A record that is not one UTF-8 line goes to the DLQ as ``bad_record``.
Rebalance: a revoked partition's unwritten records are dropped (its new owner
reads them again from the committed offset; a second write is harmless).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from edge.core.backoff import Backoff
from edge.core.flow import Holding
from edge.runtime.supervision import ServiceRuntime, start_service
from edge.influx.answers import Outcome, WriteResult, server_limit
from edge.influx.client import InfluxClient
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import DeadLetters, StageProducer
from edge.kafka.runner import StageRunner
from edge.config.settings import SinkSettings
from edge.sink.batch import BatchLimits, PartitionBuffer, request_counts, write_due
from edge.sink.buffers import SinkBuffers
from edge.sink.write import DatabaseGate, perform_write
from edge.sink.write_pool import WritePool, WriteRequest

LINES_WRITTEN = Counter("edge_sink_lines_written", "Lines InfluxDB stored (2xx), committed after")
BATCHES_WRITTEN = Counter("edge_sink_batches_written", "Write requests InfluxDB answered 2xx or 400")
WRITE_RETRIES = Counter("edge_sink_write_retries", "Write attempts that failed and will be retried")
DLQ_RECORDS = Counter("edge_sink_dlq_records", "Records sent to the DLQ", ["reason"])
SERVER_LIMIT_DROPS = Counter("edge_sink_server_limit_drops",
                             "Lines InfluxDB dropped for a server limit (in the DLQ as influx_rejected)", ["reason"])
BATCH_LINES = Histogram("edge_sink_batch_lines", "Records per write request that InfluxDB answered",
                        buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000))
LAST_WRITE = Gauge("edge_sink_last_write_timestamp", "Unix time of the last batch InfluxDB stored")
LAST_COMMIT = Gauge("edge_sink_last_commit_timestamp", "Unix time of the last successful commit")
CONSUMER_LAG = Gauge("edge_sink_consumer_lag", "Parsed records not yet fetched, per partition", ["partition"])
PAUSED = Gauge("edge_sink_paused", "1 while fetching is paused, labelled with why", ["reason"])

INFLUXDB_UNAVAILABLE = "influxdb_unavailable"
DLQ_UNAVAILABLE = "dlq_unavailable"


class SinkStage:
    def __init__(self, settings: SinkSettings, producer: StageProducer, log):
        self.settings = settings
        self.options = settings.sink
        self.log = log
        self.producer = producer
        self.dead = DeadLetters(producer, settings.kafka.dlq_topic, "sink", DLQ_RECORDS)
        self.limits = BatchLimits(max_lines=self.options.batch_max_lines, max_bytes=self.options.batch_max_bytes,
                                  max_age_s=self.options.batch_max_age_s)
        self.buffers = SinkBuffers(self.options)
        self.backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        gate = DatabaseGate(settings.influxdb.create_database, self.options.retention_duration)
        self.pool = WritePool(max(1, self.options.write_concurrency), lambda r, w: perform_write(r, w, gate),
                              lambda: InfluxClient(settings.influxdb, connect_timeout_s=self.options.connect_timeout_s))
        self.written: dict[int, int] = {}  # partition -> next offset to commit
        self.failing: WriteResult | None = None  # last failure while InfluxDB (or the DLQ) is unavailable
        self.failing_reason = INFLUXDB_UNAVAILABLE
        self.retry_at = 0.0
        self.connected_logged = False
        self.stop_deadline: float | None = None

    # ------------------------------------------------------------ Stage protocol

    def assigned(self, partitions: list[int]) -> None:
        self.buffers.assigned(partitions)

    def revoked(self, partitions: list[int], *, lost: bool) -> dict[int, int]:
        """Their written positions (committed before the handover); unwritten
        records are read again by the new owner from the commit."""
        handed = {} if lost else {p: self.written[p] for p in partitions if p in self.written}
        for partition in partitions:
            self.written.pop(partition, None)
        self.buffers.release(partitions)
        return handed

    def process(self, messages: list) -> None:
        self.buffers.take(messages, time.monotonic())

    def step(self) -> Holding:
        for request in self.pool.completed():
            self._finish(request)
        self._submit_due(time.monotonic())
        if self.pool.free == 0 and self.buffers.lines >= self.limits.max_lines * (self.pool.size + 1):
            # Every writer is busy and the next requests are ready: let InfluxDB catch
            # up here rather than fetch what would only wait.
            for request in self.pool.completed(timeout=0.5):
                self._finish(request)
            self._submit_due(time.monotonic())
        buffers = self.buffers
        return Holding(held=buffers.lines, bound=buffers.max_lines, nbytes=buffers.nbytes,
                       max_bytes=buffers.max_bytes, blocked=None if self.failing is None else self.failing_reason,
                       rewind=buffers.take_rewinds(), due_in_s=self._due_in(time.monotonic()))

    def _due_in(self, now: float) -> float:
        if self.pool.in_flight:
            return 0.005  # a write may finish any moment: look again soon
        if self.failing is not None:
            return max(0.0, min(0.5, self.retry_at - now))
        # The runner hands a record over as soon as it arrives: wait until what is
        # held is due by age (0.5 s at most with nothing held).
        return max(0.0, self.buffers.next_due(self.limits.max_age_s, now))

    def positions(self) -> dict[int, int]:
        return self.written

    def drain(self, deadline: float) -> dict:
        """Write what is held (one last try even while InfluxDB was failing: it may
        be back), as long as the deadline allows; abandon what is still running."""
        self.stop_deadline = deadline
        self.failing = None
        while time.monotonic() < deadline:
            self._submit_due(time.monotonic(), everything=True)
            if not self.pool.in_flight:
                break
            for request in self.pool.completed(timeout=min(0.2, max(0.01, deadline - time.monotonic()))):
                self._finish(request)
            if self.failing is not None:
                break
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        return {"unwritten_lines_left_uncommitted": self.buffers.lines}

    # ------------------------------------------------------------ requests

    def _submit_due(self, now: float, *, everything: bool = False) -> None:
        """Hand due records to free writers, one request across every partition
        that has none in flight; while InfluxDB is failing, one probe request once
        the backoff has elapsed."""
        if self.failing is not None:
            if now < self.retry_at or self.pool.in_flight:
                return
            budget = 1
        else:
            budget = self.pool.free
        while budget > 0:
            free = [b for b in self.buffers.oldest_first(now) if b.records and not self.buffers.is_writing(b)]
            if not free or not (everything or self._due(free, now)):
                return
            self._submit(free, now)
            budget -= 1

    def _due(self, free: list[PartitionBuffer], now: float) -> bool:
        """A request is due once any partition's oldest record has waited
        ``batch_max_age_s``, or the records held fill a request."""
        limits = self.limits
        if any(write_due(len(b.records), b.nbytes, b.oldest_at, now, limits) for b in free):
            return True
        return sum(len(b.records) for b in free) >= limits.max_lines or sum(b.nbytes for b in free) >= limits.max_bytes

    def _submit(self, free: list[PartitionBuffer], now: float) -> None:
        parts, records, total = [], [], 0
        for buf, (n, nbytes) in zip(free, request_counts(free, self.limits)):
            if not n:
                continue
            records += buf.records[:n]
            del buf.records[:n]
            buf.nbytes -= nbytes
            buf.oldest_at = now if buf.records else None  # what stays was fetched later
            self.buffers.submitted(buf, n, nbytes)
            parts.append((buf, n, nbytes))
            total += nbytes
        self.pool.submit(WriteRequest(parts, records, total))

    def _finish(self, request: WriteRequest) -> None:
        """Back in the main thread: move the positions, or put the records back.
        A part whose partition was revoked (or revoked and assigned again)
        meanwhile is not ours any more: its new owner reads those records again."""
        mine, start = [], 0
        for buf, n, nbytes in request.parts:
            if self.buffers.owns(buf):
                mine.append((buf, request.records[start:start + n], nbytes))
            start += n
        if not mine:
            return
        ok = request.result is not None and request.result.ok
        if ok and request.dead:
            owned = {buf.partition for buf, _records, _nbytes in mine}
            ok = self._dead_letter([d for d in request.dead if d[0].partition() in owned])
        if not ok:
            for buf, records, nbytes in mine:
                self.buffers.put_back(buf, records, nbytes, time.monotonic())
            if request.result is not None and not request.result.ok:
                self._fail(request.result, INFLUXDB_UNAVAILABLE)
            return
        for buf, records, nbytes in mine:
            self.buffers.written(buf, len(records), nbytes)
            self.written[buf.partition] = records[-1].offset() + 1
        LINES_WRITTEN.inc(request.written)
        BATCHES_WRITTEN.inc()
        BATCH_LINES.observe(len(request.records))
        LAST_WRITE.set_to_current_time()
        for _msg, reason, why in request.dead:
            if reason == "influx_rejected" and (limit := server_limit(why)):
                SERVER_LIMIT_DROPS.labels(reason=limit).inc()
        if self.failing is not None:
            self.log.info(self.failing_reason.replace("_unavailable", "_available"),
                          after_attempts=self.backoff.attempts, last_error=self.failing.error[:300])
            self.failing = None
            self.backoff.reset()
        if not self.connected_logged:
            self.connected_logged = True
            self.log.info("influxdb_connected", influxdb=self.settings.influxdb.url,
                          database=self.settings.influxdb.database,
                          retention_policy=self.settings.influxdb.retention_policy)

    def _dead_letter(self, dead: list[tuple[object, str, str]]) -> bool:
        """Produce the records to the DLQ and wait for every acknowledgement."""
        failures: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        for msg, reason, why in dead:
            if not self.dead.send(msg, reason, why, delivered):
                failures.append("stopping")
                break
        timeout = self.options.dlq_timeout_s
        if self.stop_deadline is not None:
            timeout = max(0.1, min(timeout, self.stop_deadline - time.monotonic()))
        remaining = self.producer.flush(timeout)
        if remaining or failures:
            error = failures[0] if failures else f"{remaining} DLQ records not acknowledged in time"
            self._fail(WriteResult(Outcome.RETRY, None, f"DLQ produce failed: {error}"), DLQ_UNAVAILABLE)
            return False
        return True

    def _fail(self, result: WriteResult, reason: str) -> None:
        """InfluxDB (or the DLQ) did not take a batch: blocked until a retry works."""
        WRITE_RETRIES.inc()
        delay = self.backoff.next_delay()
        self.retry_at = time.monotonic() + delay
        if self.failing is None or reason != self.failing_reason:
            self.log.warning(reason, status=result.status, error=result.error[:500], retry_in_s=round(delay, 2))
        self.failing = result
        self.failing_reason = reason


def build(settings: SinkSettings, stop, log, supervisor=None) -> tuple[StageRunner, SinkStage]:
    """The sink's runner and stage, wired (``run`` and the benchmarks use it)."""
    supervisor = supervisor or ServiceRuntime("sink", settings.metrics, log, env={})
    options, kafka = settings.sink, settings.kafka
    health = KafkaHealth(log, supervisor)
    runner = StageRunner(service="sink", topic=kafka.parsed_topic, group_id=options.group_id, kafka=kafka,
                         stop=stop, supervisor=supervisor, log=log, health=health, lag_gauge=CONSUMER_LAG,
                         last_commit_gauge=LAST_COMMIT, paused_gauge=PAUSED, consume_batch=options.batch_max_lines,
                         commit_interval_s=0.2, shutdown_s=options.shutdown_flush_s)
    producer = StageProducer(kafka, "edge-sink-dlq", stop=stop, supervisor=supervisor, health=health)
    return runner, SinkStage(settings, producer, runner.log)


def serve(config: str | None, group_id: str | None = None) -> int:
    """Run the sink until stopped; the exit code (``edge sink``)."""
    settings = SinkSettings.load(config)
    if group_id:
        settings.sink.group_id = group_id
    log, stop, supervisor = start_service("sink", settings)
    log.info("starting", influxdb=settings.influxdb.url, database=settings.influxdb.database,
             write_concurrency=settings.sink.write_concurrency)
    runner, stage = build(settings, stop, log, supervisor)
    return runner.run(stage, f"writing {settings.kafka.parsed_topic} -> {settings.influxdb.database}")
