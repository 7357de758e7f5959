"""``edge parse``: Kafka raw topic -> parsed topic (one record per point) and DLQ.

The parser's own protocol; consuming, committing, rebalancing and stopping are
``edge.kafka.runner``'s. Each raw message goes through ``edge.parser.handler``
(the handler ``edge replay`` calls too):

- every point -> ``<prefix>.parsed``, value = the line-protocol line, key = the
  series key (measurement + sorted tags), so one series stays on one partition;
- unusable message -> ``<prefix>.dlq``: the original bytes and headers, plus
  ``dlq.*`` headers with the reason and the source topic/partition/offset;
- partly unusable message -> its usable points as above, and the original to the
  DLQ as ``partial`` with what was wrong, so nothing is silently lost.

A raw offset may be committed only after every output of that message (and of
every message before it on its partition) was acknowledged by Kafka
(``edge.kafka.offsets``). A failed delivery rewinds that partition to its first
unfinished message, in a new generation of the tracker so that late reports from
before the rewind count for nothing; redelivery downstream is harmless (InfluxDB
overwrites an identical series+time). A revoked partition's outputs are flushed
before its offsets are committed and it is handed over.

Flow (``edge.core.flow``): the stage holds its outputs in flight, bounded by
``max_in_flight``; at the bound the runner pauses fetching, and the stage waits
for acknowledgements. After a failed delivery it is blocked (``delivery_failed``)
for a growing backoff (the next hop is struggling: do not spin), which resets
once a rewound partition moves on again.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError
from prometheus_client import Counter, Gauge

from edge.core.backoff import Backoff
from edge.core.flow import RESUME_AT, Holding
from edge.runtime.supervision import ServiceRuntime, start_service
from edge.kafka.health import KafkaHealth
from edge.kafka.offsets import OffsetTracker, Ticket
from edge.kafka.producer import PRODUCER_STATE_ERRORS, DeadLetters, StageProducer
from edge.kafka.runner import StageRunner
from edge.parser import PATH
from edge.parser.handler import RawHandler
from edge.parser.metrics import DLQ_RECORDS
from edge.config.settings import ParserSettings
from edge.parser.site_activity import SiteMetrics

REWINDS = Counter("edge_parser_rewinds", "Partitions rewound after a failed delivery")
IN_FLIGHT = Gauge("edge_parser_in_flight", "Produced records not yet acknowledged")
LAST_COMMIT = Gauge("edge_parser_last_commit_timestamp", "Unix time of the last successful commit")
CONSUMER_LAG = Gauge("edge_parser_consumer_lag", "Raw records not yet fetched, per partition", ["partition"])
PAUSED = Gauge("edge_parser_paused", "1 while fetching is paused, labelled with why", ["reason"])

HANDOVER_FLUSH_S = 6.0
REWIND_FLUSH_S = 10.0
# The most the runner waits for a record (one that arrives is handed over at
# once): how often an idle parser looks at its delivery reports.
POLL_S = 0.1
DELIVERY_FAILED = "delivery_failed"


class ParseStage:
    """Raw message -> points and dead letters; which raw offsets are done."""

    def __init__(self, settings: ParserSettings, producer: StageProducer, log):
        self.max_in_flight = settings.parser.max_in_flight
        self.producer = producer
        dead = DeadLetters(producer, settings.kafka.dlq_topic, "parser", DLQ_RECORDS)
        self.handler = RawHandler.from_settings(settings, producer.produce, dead.send)
        self.log = log
        self.sites = SiteMetrics(settings.parser.site_metrics_forget_after_s, settings.parser.site_metrics_max_sites)
        self.tracker = OffsetTracker()
        self.failed: dict[int, KafkaError] = {}  # partition with a failed delivery, to rewind -> why
        self.rewind_backoff = Backoff(0.5, 10.0)
        self.retry_at = 0.0  # blocked until then after a rewind
        self.rewound: dict[int, int] = {}  # partition -> offset read again from, until it moves on

    # ------------------------------------------------------------ Stage protocol

    def assigned(self, partitions: list[int]) -> None:
        pass

    def revoked(self, partitions: list[int], *, lost: bool) -> dict[int, int]:
        """Their positions once their outputs are acknowledged (none if lost)."""
        if not lost:
            self.producer.flush(HANDOVER_FLUSH_S)
        positions = {} if lost else self.tracker.positions()
        for partition in partitions:
            self.tracker.forget(partition)
            self.failed.pop(partition, None)
            self.rewound.pop(partition, None)
        return {p: positions[p] for p in partitions if p in positions}

    def process(self, messages: list) -> None:
        for msg in messages:
            if msg.partition() in self.failed:
                continue  # read again after the rewind
            if not self._handle(msg):
                return  # stopping: the rest is read again after the restart
        self.producer.poll(0)

    def step(self) -> Holding:
        # Delivery reports: what completes offsets. Near the bound, wait for them
        # here (the runner pauses fetching at the bound and resumes below 75 %).
        waiting = self.tracker.in_flight >= self.max_in_flight * RESUME_AT
        self.producer.poll(POLL_S if waiting else 0)
        rewind = self._rewind() if self.failed else {}
        if self.rewound:
            self._forget_backoff()
        IN_FLIGHT.set(self.tracker.in_flight)
        blocked_s = self.retry_at - time.monotonic()
        due_in_s = 0.0 if waiting else min(POLL_S, blocked_s) if blocked_s > 0 else POLL_S
        return Holding(held=self.tracker.in_flight, bound=self.max_in_flight,
                       blocked=DELIVERY_FAILED if blocked_s > 0 else None, rewind=rewind, due_in_s=due_in_s)

    def positions(self) -> dict[int, int]:
        return self.tracker.positions()

    def drain(self, deadline: float) -> dict:
        remaining = self.producer.flush(deadline - time.monotonic())
        if remaining:
            self.log.warning("stopping_with_unacknowledged_records", records=remaining)
        return {"unacknowledged_records": len(self.producer)}

    # ------------------------------------------------------------ one raw message

    def _handle(self, msg) -> bool:
        outcome = self.handler.outcome(msg)
        self.sites.seen(outcome.site(msg))
        ticket = self.tracker.begin(msg.partition(), msg.offset(), outcome.outputs)
        return self.handler.emit(msg, outcome, self._delivered(ticket))

    def _delivered(self, ticket: Ticket):
        tracker = self.tracker
        failed = self.failed

        def delivered(err, _msg) -> None:
            if err is not None:
                failed[ticket.partition] = err
            else:
                tracker.done(ticket)

        return delivered

    def _rewind(self) -> dict[int, int]:
        """Wait for outstanding deliveries; the failed partitions are read again
        from their first unfinished message once a growing backoff has passed."""
        self.producer.flush(REWIND_FLUSH_S)
        failed, self.failed = self.failed, {}
        if any(err.code() in PRODUCER_STATE_ERRORS for err in failed.values()):
            # The broker no longer takes this producer's records: a new one (new id).
            self.log.error("kafka_producer_replaced", error=next(iter(failed.values())).str())
            self.producer.replace()
        rewind: dict[int, int] = {}
        delay = self.rewind_backoff.next_delay()
        self.retry_at = time.monotonic() + delay
        for partition, error in sorted(failed.items()):
            start = self.tracker.first_incomplete(partition)
            self.tracker.forget(partition)
            if start is None:
                continue
            REWINDS.inc()
            self.log.warning("partition_rewound", partition=partition, offset=start, error=error.str(),
                             retry_in_s=round(delay, 2))
            rewind[partition] = self.rewound[partition] = start
        return rewind

    def _forget_backoff(self) -> None:
        """A rewound partition committed past where it was read again from: the
        next hop takes records again, so the next failure starts a fresh backoff."""
        positions = self.tracker.positions()
        if any(positions.get(p, -1) > start for p, start in self.rewound.items()):
            self.rewound.clear()
            self.rewind_backoff.reset()


def build(settings: ParserSettings, stop, log, supervisor=None) -> tuple[StageRunner, ParseStage]:
    """The parser's runner and stage, wired (``run`` and the benchmarks use it)."""
    supervisor = supervisor or ServiceRuntime("parser", settings.metrics, log, env={})
    kafka = settings.kafka
    health = KafkaHealth(log, supervisor)
    runner = StageRunner(service="parser", topic=kafka.raw_topic, group_id=settings.parser.group_id, kafka=kafka,
                         stop=stop, supervisor=supervisor, log=log, health=health, lag_gauge=CONSUMER_LAG,
                         last_commit_gauge=LAST_COMMIT, paused_gauge=PAUSED, consume_batch=500, commit_interval_s=1.0,
                         shutdown_s=HANDOVER_FLUSH_S)
    producer = StageProducer(kafka, "edge-parser", stop=stop, supervisor=supervisor, health=health)
    # onepass: the compiled hot path (falling back to the pure parser, counted in
    # edge_parser_fallbacks_total); pure: the extension is not built on this machine.
    runner.log.info("parser_path", path=PATH)
    return runner, ParseStage(settings, producer, runner.log)


def serve(config: str | None, group_id: str | None = None) -> int:
    """Run the parse stage until stopped; the exit code (``edge parse``)."""
    settings = ParserSettings.load(config)
    if group_id:
        settings.parser.group_id = group_id
    log, stop, supervisor = start_service("parser", settings)
    runner, stage = build(settings, stop, log, supervisor)
    return runner.run(stage, f"parsing {settings.kafka.raw_topic} -> {settings.kafka.parsed_topic}")
