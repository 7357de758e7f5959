"""``edge sink``: Kafka parsed topic -> InfluxDB 1.x, committing only what InfluxDB stored.

The sink's own protocol; consuming, committing, rebalancing and stopping are
``edge.kafka.runner``'s. Records (value = one line-protocol line) are held per
partition and InfluxDB node, a "lane" (``edge.sink.buffers``; with one node, the
default, a partition has one lane and no record is looked at; with several
(``[influxdb.nodes]``, docs/scaling.md) each record goes to its site's node,
``edge.sink.routing``). They are written in batches bounded by lines, bytes and
age (``edge.sink.batch``) by ``write_concurrency`` worker threads per node
(``edge.sink.write_pool``) while the main thread keeps consuming. One request
holds one node's records: those of every lane of that node with no request in
flight (at most one per lane, so positions only move forward), oldest first: at
field rates a message's points spread over most partitions, and one request for
all of them is queryable at once instead of after the slowest of six. Under load
a request fills from one lane and the writers share the lanes.
After a batch (``edge.sink.write``):

- 2xx: the lanes' records are written; a partition's position (what is
  committed) is the lowest offset not yet written in any of its lanes, so offsets
  commit only what every node took.
- 400: the refused lines go to ``<prefix>.dlq`` (reason ``influx_rejected``,
  InfluxDB's message, source offset); the rest is stored; the records count as
  written once the DLQ acknowledged.
- A node down, 5xx, auth or config trouble: that node is failing
  (``influxdb_unavailable`` with its name and URL, ``edge.sink.outages``); its
  records are retried with capped jittered backoff, one probe request at a time,
  while the other nodes' records keep being written. The sink says it is blocked
  (the runner pauses fetching) only when nothing can move: every node failing,
  or the DLQ not acknowledging (``dlq_unavailable``).

Memory stays bounded: at ``max_buffered_lines`` / ``max_buffered_bytes`` the sink
reports itself full and the runner pauses fetching until it is down to 75 %
(``edge.core.flow``); records fetched past the bound are let go and read again
(a rewind the runner seeks to). A failing node's backlog counts too: once it
fills the bound, fetching pauses and the healthy nodes' sites wait as well.

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
from edge.influx.nodes import SITE_MAP_VERSION
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import DeadLetters, StageProducer
from edge.kafka.runner import StageRunner
from edge.config.settings import SinkSettings
from edge.sink.batch import BatchLimits, PartitionBuffer, request_counts, write_due
from edge.sink.buffers import SinkBuffers
from edge.sink.outages import DLQ_UNAVAILABLE, INFLUXDB_UNAVAILABLE, Outage
from edge.sink.routing import NodeRouter
from edge.sink.write import DatabaseGate, perform_write
from edge.sink.write_pool import WritePool, WriteRequest

LINES_WRITTEN = Counter("edge_sink_lines_written", "Lines InfluxDB stored (2xx), committed after")
NODE_LINES_WRITTEN = Counter("edge_sink_node_lines_written", "Lines InfluxDB stored (2xx), per node", ["node"])
BATCHES_WRITTEN = Counter("edge_sink_batches_written", "Write requests InfluxDB answered 2xx or 400")
DLQ_RECORDS = Counter("edge_sink_dlq_records", "Records sent to the DLQ", ["reason"])
SERVER_LIMIT_DROPS = Counter("edge_sink_server_limit_drops",
                             "Lines InfluxDB dropped for a server limit (in the DLQ as influx_rejected)", ["reason"])
BATCH_LINES = Histogram("edge_sink_batch_lines", "Records per write request that InfluxDB answered",
                        buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000))
LAST_WRITE = Gauge("edge_sink_last_write_timestamp", "Unix time of the last batch InfluxDB stored")
LAST_COMMIT = Gauge("edge_sink_last_commit_timestamp", "Unix time of the last successful commit")
CONSUMER_LAG = Gauge("edge_sink_consumer_lag", "Parsed records not yet fetched, per partition", ["partition"])
PAUSED = Gauge("edge_sink_paused", "1 while fetching is paused, labelled with why", ["reason"])


class SinkStage:
    def __init__(self, settings: SinkSettings, producer: StageProducer, log):
        self.settings = settings
        self.options = options = settings.sink
        self.log = log
        self.producer = producer
        self.dead = DeadLetters(producer, settings.kafka.dlq_topic, "sink", DLQ_RECORDS)
        self.limits = BatchLimits(max_lines=options.batch_max_lines, max_bytes=options.batch_max_bytes,
                                  max_age_s=options.batch_max_age_s)
        influx = settings.influxdb
        self.nodes = influx.node_names
        self.buffers = SinkBuffers(options, self.nodes, NodeRouter(influx.routes()))
        self.outages = {node: Outage(INFLUXDB_UNAVAILABLE, node, self._backoff(), log, node=node,
                                     url=influx.node_settings(node).url) for node in self.nodes}
        self.dlq = Outage(DLQ_UNAVAILABLE, "dlq", self._backoff(), log)
        self._lines = {node: NODE_LINES_WRITTEN.labels(node=node) for node in self.nodes}
        gates = {node: DatabaseGate(influx.create_database, options.retention_duration) for node in self.nodes}
        self.pool = WritePool(max(1, options.write_concurrency), lambda r, w: perform_write(r, w, gates[r.node]),
                              lambda node: InfluxClient(influx.node_settings(node),
                                                        connect_timeout_s=options.connect_timeout_s), self.nodes)
        self.connected: set[str] = set()
        self.stop_deadline: float | None = None

    def _backoff(self) -> Backoff:
        return Backoff(self.options.retry_initial_s, self.options.retry_max_s)

    # ------------------------------------------------------------ Stage protocol

    def assigned(self, partitions: list[int]) -> None:
        self.buffers.assigned(partitions)

    def revoked(self, partitions: list[int], *, lost: bool) -> dict[int, int]:
        """Their positions (committed before the handover); unwritten records are
        read again by the new owner from the commit."""
        handed = {} if lost else self.buffers.positions(partitions)
        self.buffers.release(partitions)
        return handed

    def process(self, messages: list) -> None:
        self.buffers.take(messages, time.monotonic())

    def step(self) -> Holding:
        for request in self.pool.completed():
            self._finish(request)
        self._submit_due(time.monotonic())
        if self._writers_saturated():
            # Every writer that may write is busy and the next requests are ready:
            # let InfluxDB catch up here rather than fetch what would only wait.
            for request in self.pool.completed(timeout=0.5):
                self._finish(request)
            self._submit_due(time.monotonic())
        buffers = self.buffers
        return Holding(held=buffers.lines, bound=buffers.max_lines, nbytes=buffers.nbytes,
                       max_bytes=buffers.max_bytes, blocked=self._blocked(),
                       rewind=buffers.take_rewinds(), due_in_s=self._due_in(time.monotonic()))

    def _writers_saturated(self) -> bool:
        pool = self.pool
        if self.buffers.lines < self.limits.max_lines * (pool.threads + 1):
            return False
        working = [n for n in self.nodes if self.outages[n].failing is None]
        return bool(working) and all(pool.free(n) == 0 for n in working)

    def _blocked(self) -> str | None:
        """Why nothing can move (fetching pauses): the DLQ fails, or every node does.
        One node failing holds back only its own records."""
        if self.dlq.failing is not None:
            return DLQ_UNAVAILABLE
        if all(o.failing is not None for o in self.outages.values()):
            return INFLUXDB_UNAVAILABLE
        return None

    def _due_in(self, now: float) -> float:
        due = 0.5
        for node in self.nodes:
            outage = self.outages[node]
            if self.pool.busy[node]:
                due = min(due, 0.005 if outage.failing is None else 0.05)  # a write may finish any moment
            elif self.dlq.failing is not None or outage.failing is not None:
                due = min(due, (self.dlq if self.dlq.failing is not None else outage).retry_at - now)
            else:
                # The runner hands a record over as soon as it arrives: wait until
                # what is held is due by age (0.5 s at most with nothing held).
                due = min(due, self.buffers.next_due(node, self.limits.max_age_s, now))
        return max(0.0, due)

    def positions(self) -> dict[int, int]:
        return self.buffers.positions()

    def drain(self, deadline: float) -> dict:
        """Write what is held (one last try on every node, even one that was failing:
        it may be back), as long as the deadline allows; abandon what is still running."""
        self.stop_deadline = deadline
        self.dlq.forgive()
        for outage in self.outages.values():
            outage.forgive()
        while time.monotonic() < deadline:
            self._submit_due(time.monotonic(), everything=True)
            if not self.pool.in_flight:
                break
            for request in self.pool.completed(timeout=min(0.2, max(0.01, deadline - time.monotonic()))):
                self._finish(request)
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        return {"unwritten_lines_left_uncommitted": self.buffers.lines}

    # ------------------------------------------------------------ requests

    def _budget(self, node: str, now: float) -> int:
        """Requests ``node`` may get now: as many as it has free writers; one probe
        at a time while it fails (or the DLQ does, for every node together) once
        its backoff has elapsed."""
        if self.dlq.failing is not None:
            return 0 if self.dlq.waiting(now) or self.pool.in_flight else 1
        outage = self.outages[node]
        if outage.failing is not None:
            return 0 if outage.waiting(now) or self.pool.busy[node] else 1
        return self.pool.free(node)

    def _submit_due(self, now: float, *, everything: bool = False) -> None:
        """Hand due records to free writers: per node, one request across every
        lane of that node that has none in flight."""
        for node in self.nodes:
            budget = self._budget(node, now)
            while budget > 0:
                free = [b for b in self.buffers.oldest_first(node, now) if b.records and not self.buffers.is_writing(b)]
                if not free or not (everything or self._due(free, now)):
                    break
                self._submit(node, free, now)
                budget -= 1

    def _due(self, free: list[PartitionBuffer], now: float) -> bool:
        """A request is due once any lane's oldest record has waited
        ``batch_max_age_s``, or the records held fill a request."""
        limits = self.limits
        if any(write_due(len(b.records), b.nbytes, b.oldest_at, now, limits) for b in free):
            return True
        return sum(len(b.records) for b in free) >= limits.max_lines or sum(b.nbytes for b in free) >= limits.max_bytes

    def _submit(self, node: str, free: list[PartitionBuffer], now: float) -> None:
        parts, records, total = [], [], 0
        for buf, (n, nbytes) in zip(free, request_counts(free, self.limits)):
            if not n:
                continue
            taken = buf.records[:n]
            records += taken
            del buf.records[:n]
            buf.nbytes -= nbytes
            buf.oldest_at = now if buf.records else None  # what stays was fetched later
            self.buffers.submitted(buf, taken, nbytes)
            parts.append((buf, n, nbytes))
            total += nbytes
        self.pool.submit(WriteRequest(parts, records, total, node))

    def _finish(self, request: WriteRequest) -> None:
        """Back in the main thread: the lanes' records are written, or go back.
        A part whose partition was revoked (or revoked and assigned again)
        meanwhile is not ours any more: its new owner reads those records again."""
        mine, start = [], 0
        for buf, n, nbytes in request.parts:
            if self.buffers.owns(buf):
                mine.append((buf, request.records[start:start + n], nbytes))
            start += n
        if not mine:
            return
        node = request.node
        ok = request.result is not None and request.result.ok
        if ok and request.dead:
            owned = {buf.partition for buf, _records, _nbytes in mine}
            ok = self._dead_letter([d for d in request.dead if d[0].partition() in owned])
        if not ok:
            for buf, records, nbytes in mine:
                self.buffers.put_back(buf, records, nbytes, time.monotonic())
            if request.result is not None and not request.result.ok:
                self.outages[node].fail(request.result, time.monotonic())
            return
        for buf, records, nbytes in mine:
            self.buffers.written(buf, len(records), nbytes)
        LINES_WRITTEN.inc(request.written)
        self._lines[node].inc(request.written)
        BATCHES_WRITTEN.inc()
        BATCH_LINES.observe(len(request.records))
        LAST_WRITE.set_to_current_time()
        for _msg, reason, why in request.dead:
            if reason == "influx_rejected" and (limit := server_limit(why)):
                SERVER_LIMIT_DROPS.labels(reason=limit).inc()
        self.dlq.recovered()
        self.outages[node].recovered()
        if node not in self.connected:
            self.connected.add(node)
            self.log.info("influxdb_connected", influxdb=self.outages[node].context["url"], node=node,
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
            self.dlq.fail(WriteResult(Outcome.RETRY, None, f"DLQ produce failed: {error}"), time.monotonic())
            return False
        return True


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
    SITE_MAP_VERSION.set(settings.influxdb.site_map_version)
    return runner, SinkStage(settings, producer, runner.log)


def serve(config: str | None, group_id: str | None = None) -> int:
    """Run the sink until stopped; the exit code (``edge sink``)."""
    settings = SinkSettings.load(config)
    if group_id:
        settings.sink.group_id = group_id
    log, stop, supervisor = start_service("sink", settings)
    influx = settings.influxdb
    nodes = {name: influx.node_settings(name).url for name in influx.node_names}
    log.info("starting", influxdb=influx.url, database=influx.database, nodes=nodes,
             site_map_version=influx.site_map_version, write_concurrency=settings.sink.write_concurrency)
    runner, stage = build(settings, stop, log, supervisor)
    return runner.run(stage, f"writing {settings.kafka.parsed_topic} -> {settings.influxdb.database}")
