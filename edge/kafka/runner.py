"""The consumer side every Kafka stage shares: one loop, one place offsets are committed.

A stage (``edge.parser.stage``, ``edge.sink.stage``) implements ``Stage``: what to
do with fetched records, what it holds (``edge.core.flow.Holding``) and which
offsets its work has made safe to commit. It never touches the consumer. The
runner owns the rest, once for all stages:

- the consumer: static group membership (``edge.kafka.config``), subscribe,
  rebalance callbacks, error callback (``edge.kafka.health``); or, with
  ``[kafka] assignment = "all"``, every partition assigned directly, no group
  (``edge.kafka.assignment``);
- the loop: stop signal, watchdog, READY once the broker answered, consumer lag;
  it waits for one record at most the stage's ``due_in_s`` and takes the rest
  already fetched without waiting, so a record is handed over as soon as it
  arrives; flow: after each ``step`` it holds back, pauses, resumes and seeks
  the partitions as the stage's ``Holding`` says (``edge.kafka.flow``);
- commits: every ``commit_interval_s`` the offsets ``Stage.positions()`` reports
  that moved since the last commit (asynchronously; a failed commit is retried);
  synchronously before a revoked partition is handed over and at shutdown;
- shutdown on SIGTERM/SIGINT: let the stage drain within ``shutdown_s`` (``drain``
  returns what the ``stopped`` log line should say), commit, close the consumer.
  With static membership closing does not leave the group (KIP-345): a restart
  under the same id takes its partitions straight back, with no rebalance; a
  member that stays away loses them after the session timeout.

Rebalance: ``assigned`` for new partitions; ``revoked`` for revoked ones (the
stage finishes what can be finished, forgets them and returns their positions,
which are committed before the handover); for lost ones (taken without a clean
handover) ``revoked(lost=True)``: another member may own them already, so
nothing is committed for them.
"""

from __future__ import annotations

import time
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from edge.core.backoff import Backoff
from edge.core.flow import Holding
from edge.kafka.assignment import DirectAssignment
from edge.kafka.config import consumer_config
from edge.kafka.flow import FetchFlow
from edge.kafka.lag import LagGauge

# A static member whose id another process took: a configuration mistake.
EXIT_FENCED = 3


class Stage(Protocol):
    def assigned(self, partitions: list[int]) -> None: ...
    def revoked(self, partitions: list[int], *, lost: bool) -> dict[int, int]: ...
    def process(self, messages: list) -> None: ...
    def step(self) -> Holding: ...
    def positions(self) -> dict[int, int]: ...
    def drain(self, deadline: float) -> dict: ...


def wait_for_kafka(client, topic: str, supervisor, stop, log, timeout_s: float = 2.0) -> bool:
    """Block until the broker answers a metadata request for ``topic`` (or stop).

    librdkafka connects lazily, so the first answered metadata request is the first
    proof that the bootstrap servers, listener and credentials work.
    """
    waiting_logged = False
    while not stop.is_set():
        supervisor.alive()
        try:
            client.list_topics(topic, timeout=timeout_s)
            if waiting_logged:
                log.info("kafka_reachable")
            return True
        except KafkaException as exc:
            supervisor.status("waiting for Kafka")
            if not waiting_logged:
                waiting_logged = True
                log.warning("waiting_for_kafka", error=str(exc))
            stop.wait(0.5)
    return False


class StageRunner:
    def __init__(self, *, service: str, topic: str, group_id: str, kafka, stop, supervisor, log, health,
                 lag_gauge, last_commit_gauge, paused_gauge, consume_batch: int = 500, commit_interval_s: float = 1.0,
                 shutdown_s: float = 5.0, client_id: str | None = None):
        self.service = service
        self.topic = topic
        self.group_id = group_id
        self.stop = stop
        self.supervisor = supervisor
        self.health = health
        self.consume_batch = consume_batch
        self.commit_interval_s = commit_interval_s
        self.shutdown_s = shutdown_s
        self.lag = LagGauge(lag_gauge)
        self.last_commit_gauge = last_commit_gauge
        conf = consumer_config(kafka, group_id, client_id or f"edge-{service}", service=service,
                               error_cb=health.on_error, on_commit=self._on_commit)
        self.instance_id = conf.get("group.instance.id")
        self.log = log.bind(topic=topic, group=group_id)
        self.consumer = Consumer(conf)
        self.flow = FetchFlow(self.consumer, topic, paused_gauge, self.log, supervisor)
        self.stage: Stage | None = None
        # ``[kafka] assignment = "all"``: every partition, no group membership.
        self.direct = DirectAssignment(self.consumer, topic, self.log) if kafka.assignment == "all" else None
        self._wait_s = 0.05
        self._committed: dict[int, int] = {}
        self._next_commit = 0.0
        self._bug_backoff = Backoff(0.5, 30.0)

    # ------------------------------------------------------------ loop

    def run(self, stage: Stage, ready_status: str) -> int:
        self.stage = stage
        self.flow.ready_status = ready_status
        if self.direct is None:
            self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                    on_lost=self._on_lost)
            self.log.info("started", group_instance_id=self.instance_id)
        else:
            self.log.info("started", assignment="all")
        code = 0
        try:
            if wait_for_kafka(self.consumer, self.topic, self.supervisor, self.stop, self.log):
                self._assign_directly()
                self.supervisor.ready(ready_status)
            while not self.stop.is_set():
                self.supervisor.alive()
                if self.direct is not None and self.direct.due():
                    self._assign_directly()
                try:
                    self._step(stage)
                except Exception as exc:  # a bug in a stage: log, back off, keep the offsets
                    self.log.exception("stage_step_failed", error=f"{type(exc).__name__}: {exc}")
                    self.stop.wait(self._bug_backoff.next_delay())
                if self.health.fatal is not None:
                    code = self._on_fatal(self.health.fatal)
                    break
        finally:
            self._shutdown(stage)
        return code

    def _step(self, stage: Stage) -> None:
        if self.flow.fetching:
            fetched = self._fetch(self._wait_s)
            good = [m for m in fetched if m.error() is None]
            if len(good) != len(fetched):
                for m in fetched:
                    if m.error() is not None:
                        self._on_consume_error(m.error())
            if good:
                self.health.reachable()
                stage.process(good)
        else:
            self.stop.wait(self._wait_s)  # full: the stage waits on its own work in step()
        holding = stage.step()
        self.flow.apply(holding)
        self._wait_s = holding.due_in_s
        self.lag.refresh(self.consumer)
        if time.monotonic() >= self._next_commit:
            self.commit(stage.positions(), asynchronous=True)

    def _fetch(self, wait_s: float) -> list:
        """Wait up to ``wait_s`` for one record (librdkafka hands it over the moment
        it arrives), then take what else is already fetched without waiting. A
        ``consume(n, timeout)`` waits for n records or the whole timeout: at field
        rates that was the timeout, every time, on every hop."""
        fetched = self.consumer.consume(1, timeout=wait_s)
        if fetched and self.consume_batch > 1:
            fetched += self.consumer.consume(self.consume_batch - 1, timeout=0)
        return fetched

    def _on_fatal(self, err: KafkaError) -> int:
        if err.code() == KafkaError.FENCED_INSTANCE_ID:
            self.log.error("group_instance_fenced", group_instance_id=self.instance_id,
                           error="another member joined with the same group.instance.id; set a distinct "
                                 "EDGE_KAFKA__GROUP_INSTANCE_ID for each instance")
            return EXIT_FENCED
        self.log.error("kafka_fatal_error", error=err.str())
        return 1

    def _on_consume_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._PARTITION_EOF:
            self.health.on_error(err)

    # ------------------------------------------------------------ commits

    def commit(self, positions: dict[int, int], *, asynchronous: bool) -> None:
        """Commit the positions that moved since they were last committed."""
        self._next_commit = time.monotonic() + self.commit_interval_s
        pending = {p: o for p, o in positions.items() if self._committed.get(p) != o}
        if not pending:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in pending.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            # Not committed: read again after a restart or rebalance (idempotent downstream).
            self.log.warning("commit_failed", error=str(exc), partitions=sorted(pending))
            return
        self._committed.update(pending)
        self.last_commit_gauge.set_to_current_time()

    def _on_commit(self, err, partitions) -> None:
        if err is None or err.code() == KafkaError._NO_OFFSET:
            return
        for tp in partitions:  # committed nothing: let the next commit carry them again
            self._committed.pop(tp.partition, None)
        self.log.warning("commit_failed", error=err.str(), partitions=sorted(tp.partition for tp in partitions))

    # ------------------------------------------------------------ rebalance

    def _on_assign(self, _consumer, tps: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in tps)
        self.stage.assigned(parts)
        self.flow.assigned()
        self.log.info("partitions_assigned", partitions=parts)

    def _assign_directly(self) -> None:
        """``assignment = "all"``: take the topic's partitions not taken yet."""
        if self.direct is None:
            return
        new = self.direct.grow_quietly()
        if new:
            self._on_assign(None, [TopicPartition(self.topic, p) for p in new])

    def _on_revoke(self, _consumer, tps: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in tps)
        self.commit(self.stage.revoked(parts, lost=False), asynchronous=False)
        self._forget(parts)
        self.log.info("partitions_revoked", partitions=parts)

    def _on_lost(self, _consumer, tps: list[TopicPartition]) -> None:
        parts = sorted(tp.partition for tp in tps)
        self.stage.revoked(parts, lost=True)
        self._forget(parts)
        self.log.warning("partitions_lost", partitions=parts)

    def _forget(self, parts: list[int]) -> None:
        for p in parts:
            self._committed.pop(p, None)

    # ------------------------------------------------------------ shutdown

    def _shutdown(self, stage: Stage) -> None:
        self.log.info("stopping", signal=self.stop.signal_name)
        self.supervisor.stopping()
        deadline = time.monotonic() + self.shutdown_s
        summary = stage.drain(deadline)
        self.commit(stage.positions(), asynchronous=False)
        try:
            self.consumer.close()
        except KafkaException as exc:
            self.log.warning("consumer_close_failed", error=str(exc))
        self.log.info("stopped", **summary)
