"""Pause, resume and seek a consumer's partitions as its stage's ``Holding`` says.

The one place any Kafka stage's input is held back (``edge.core.flow`` decides
when; this applies it). Every assigned partition is held together: a stage's
bound and its blockers (InfluxDB, the next topic) are shared by all of them.
Two ways, by how long the hold is likely to last:

- A full stage (``buffer_full``) is usually full for a write or an
  acknowledgement: the runner just does not fetch for that step
  (``fetching`` is False), and librdkafka's prefetched records wait in its
  bounded queue. Measured: pausing partitions for these short holds cost about a
  quarter of the sink's and the whole path's throughput, because librdkafka drops
  a paused partition's prefetched records and fetches them again on resume.
- A blocked stage, or one full for longer than ``HOLD_S``: librdkafka's pause
  (``Consumer.pause``); the loop keeps polling, so rebalance callbacks are served
  and ``max.poll.interval.ms`` never expires, however long InfluxDB is away. It
  stays paused until the stage takes input again.
- Rewinds are seeks to the offsets the stage returned, after the pause, so a
  rewound partition is read again from there once it resumes.
- Partitions assigned while paused are paused too, on the next step (during the
  assign callback they are not assigned yet); a pause or resume that failed is
  tried again on the next step.
- The reason is shown: the ``paused`` gauge carries it as a label (1 for the
  current reason, 0 for the others seen), and a blocked stage's systemd status
  says ``paused: <reason>`` until it resumes.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException, TopicPartition

from edge.core.flow import BUFFER_FULL, Holding, pause_reason

HOLD_S = 10.0  # a stage full for longer is paused (well under max.poll.interval.ms)


class FetchFlow:
    def __init__(self, consumer, topic: str, gauge, log, supervisor):
        self.consumer = consumer
        self.topic = topic
        self.gauge = gauge
        self.log = log
        self.supervisor = supervisor
        self.ready_status = ""
        self.reason: str | None = None
        self.since = 0.0  # when self.reason began
        self.paused = False  # the partitions are paused (not merely not fetched)
        self.fetching = True  # consume() this step: free, or paused (it then only serves callbacks)
        self._resync = False
        self._loud = False  # this pause was (also) for a blocker: its end is worth an info line

    def assigned(self) -> None:
        self._resync = self._resync or self.paused

    def apply(self, holding: Holding) -> None:
        reason = pause_reason(holding, self.reason)
        now = time.monotonic()
        if reason != self.reason:
            self._switch(reason, holding)
            self.since = now
        paused = reason is not None and (self.paused or reason != BUFFER_FULL or now - self.since >= HOLD_S)
        if paused != self.paused or self._resync:
            self._resync = not self._set_paused(paused)
            self.paused = paused
        self.fetching = reason is None or paused
        for partition, offset in holding.rewind.items():
            self._seek(partition, offset)

    def _switch(self, reason: str | None, holding: Holding) -> None:
        was = self.reason
        self.reason = reason
        if was is not None:
            self.gauge.labels(reason=was).set(0)
        if reason is not None:
            self.gauge.labels(reason=reason).set(1)
        # Buffer-full pauses come and go under load: not worth an info line each.
        self._loud = self._loud or bool(holding.blocked)
        say = self.log.info if self._loud else self.log.debug
        if reason is None:
            say("fetching_resumed", after=was, held=holding.held)
            self._loud = False
        else:
            say("fetching_paused", reason=reason, held=holding.held)
        if holding.blocked:
            self.supervisor.status(f"paused: {reason}")
        elif was is not None and was != BUFFER_FULL:
            self.supervisor.status(self.ready_status)

    def _set_paused(self, paused: bool) -> bool:
        """Pause or resume every assigned partition; False if it failed."""
        try:
            assignment = self.consumer.assignment()
            (self.consumer.pause if paused else self.consumer.resume)(assignment)
            return True
        except KafkaException as exc:
            self.log.debug("pause_resume_failed", error=str(exc))
            return False

    def _seek(self, partition: int, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(self.topic, partition, offset))
        except KafkaException as exc:
            # The partition left us meanwhile: its new owner starts from the commit.
            self.log.warning("seek_failed", partition=partition, offset=offset, error=str(exc))
