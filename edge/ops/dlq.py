"""Kafka I/O of ``edge dlq``: read the dead-letter topic, send failures back to
their stage's input topic and mark them resolved.

Reads are bounded (to each partition's end at the time of reading), assign-only
(no consumer group is joined) and never commit anything. ``edge dlq list`` and
``redrive`` read the whole DLQ: a failure's copies and its resolution markers
may be anywhere in it (the DLQ's retention bounds it: 30 days by default).

Redrive sends a failure's latest copy, with its original key and headers plus
``redrive.from`` (the DLQ address), ``redrive.failure`` (its failure id: a stage
that fails it the same way again writes a repeat marker, not another copy) and
``redrive.time``, to ``<prefix>.raw``
(parser stage) or ``<prefix>.parsed`` (sink stage). Once Kafka acknowledged it,
a resolution marker goes to the DLQ (``edge.core.dlq.resolution_headers``);
a send that was not acknowledged gets no marker, so the failure stays open.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import structlog

from edge.config.settings import KafkaSettings, MetricsSettings
from edge.core.dlq import REDRIVE_TARGET, redrive_headers, resolution_headers
from edge.core.errors import NotFoundError, UnreachableError
from edge.core.lifecycle import StopSignal
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import StageProducer
from edge.kafka.topic_reader import TopicReader
from edge.ops.dlq_failures import Failure, failure_of, is_marker, is_repeat
from edge.ops.dlq_view import Letter, parse_address
from edge.runtime.supervision import ServiceRuntime

GROUP_ID = "edge-ops-dlq"  # never joined, never committed: assign-only reads
DELIVERY_TIMEOUT_S = 60.0


def _letter(msg) -> Letter:
    return Letter(msg.partition(), msg.offset(), msg.value(), msg.key(), list(msg.headers() or []))


def read_letters(kafka: KafkaSettings) -> tuple[list[Letter], list[int]]:
    """Every record of the DLQ (dead letters and resolution markers), and its partitions."""
    reader = TopicReader(kafka, kafka.dlq_topic, group_id=GROUP_ID, client_id="edge-dlq")
    try:
        letters = []
        for batch in reader.read(reader.offsets_at(None)):
            letters.extend(map(_letter, batch))
        return letters, reader.partitions()
    finally:
        reader.close()


def known_failures(kafka: KafkaSettings) -> set[str]:
    """The ids of the failures whose body the DLQ holds (a record with ``dlq.*``
    headers that is neither a resolution nor a repeat marker)."""
    letters, _partitions = read_letters(kafka)
    return {failure_of(letter) for letter in letters if not is_marker(letter) and not is_repeat(letter)}


def read_one(kafka: KafkaSettings, address: str) -> Letter:
    reader = TopicReader(kafka, kafka.dlq_topic, group_id=GROUP_ID, client_id="edge-dlq")
    try:
        partition, offset = parse_address(address, reader.partitions())
        for batch in reader.read({partition: offset}, lambda msg: msg.offset() > offset):
            for msg in batch:
                if msg.offset() == offset:
                    return _letter(msg)
        raise NotFoundError(f"no record at {partition}:{offset} in {kafka.dlq_topic}")
    finally:
        reader.close()


def _where(msg) -> str:
    return f"{msg.topic()}:{msg.partition()}:{msg.offset()}"


def redrive(kafka: KafkaSettings, failures: list[Failure], now: datetime | None = None) -> Counter:
    """Send each failure's latest copy back to its stage's input topic, wait for
    every acknowledgement, then mark each acknowledged one resolved in the DLQ
    (and wait for those). Returns the count per target topic."""
    when = now or datetime.now(timezone.utc)
    targets = {"raw": kafka.raw_topic, "parsed": kafka.parsed_topic}
    log = structlog.get_logger()
    producer = StageProducer(kafka, "edge-dlq-redrive", stop=StopSignal(), health=KafkaHealth(log),
                             supervisor=ServiceRuntime("dlq", MetricsSettings(), log, env={}))
    errors: list[str] = []
    acked: list[tuple[Failure, str]] = []

    def on_sent(failure: Failure):
        def delivered(err, msg) -> None:
            if err is not None:
                errors.append(f"{msg.topic()}: {err.str()}")
            else:
                acked.append((failure, _where(msg)))
        return delivered

    sent: Counter = Counter()
    for failure in failures:
        letter = failure.latest
        topic = targets[REDRIVE_TARGET[letter.dead_letter.stage]]
        headers = redrive_headers(letter.headers, dlq_topic=kafka.dlq_topic, partition=letter.partition,
                                  offset=letter.offset, failure=failure.id, now=when)
        producer.produce(topic, letter.value, key=letter.key, headers=headers, on_delivery=on_sent(failure))
        producer.poll(0)
        sent[topic] += 1
    left = producer.flush(DELIVERY_TIMEOUT_S)

    marked: list[str] = []

    def on_marked(err, msg) -> None:
        if err is not None:
            errors.append(f"{kafka.dlq_topic}: {err.str()}")
        else:
            marked.append(_where(msg))

    for failure, where in acked:
        markers = resolution_headers(origin=f"{kafka.dlq_topic}:{failure.address}", failure=failure.id,
                                     sent_to=where, when=when)
        producer.produce(kafka.dlq_topic, None, headers=markers, on_delivery=on_marked)
        producer.poll(0)
    left += producer.flush(DELIVERY_TIMEOUT_S)
    if left or errors or len(marked) != len(failures):
        detail = "; ".join(errors[:3]) or f"{left} not acknowledged within {DELIVERY_TIMEOUT_S:.0f} s"
        raise UnreachableError(
            f"kafka: {len(failures) - len(acked)} of {len(failures)} redriven records not delivered and"
            f" {len(acked) - len(marked)} resolution markers not written ({detail}); a failure without its"
            " marker still lists as open; redriving again is harmless"
        )
    return sent
