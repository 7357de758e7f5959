"""``edge dlq list | show | redrive``: read the dead-letter topic and send dead
letters back through the pipeline once their cause is fixed.

- ``list [--reason R] [--stage S] [--since T]``: a table of time, stage, reason,
  site (where the body tells), source topic:partition:offset and error.
- ``show ADDRESS``: every header and the body of one record (``PARTITION:OFFSET``),
  control bytes and invalid UTF-8 shown escaped, never sent to the terminal raw.
- ``redrive [--reason R] [--stage S] [--offsets P:A-B] [--since T] [--dry-run]``:
  parser-stage records go back to ``<prefix>.raw`` (parsed again by the live
  parser, with today's settings), sink-stage records back to ``<prefix>.parsed``;
  each with its original key and headers plus ``redrive.from`` (the DLQ address it
  came from) and ``redrive.time``. Every send is acknowledged before the command
  says it is done. Redriving the same record twice is harmless: InfluxDB
  overwrites a point with the same series and time. A record that fails again is
  dead-lettered again, with its ``redrive.*`` headers.

Reads are bounded (to each partition's end at the time of reading), assign-only
(no consumer group is joined) and never commit anything.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import structlog

from edge.core.dlq import REDRIVE_TARGET, redrive_headers
from edge.core.errors import NotFoundError, UnreachableError
from edge.core.lifecycle import StopSignal
from edge.runtime.supervision import ServiceRuntime
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import StageProducer
from edge.ops.dlq_view import Letter, Selection, parse_address, parse_range, row, safe_text, table
from edge.core.moments import epoch_ms, moment
from edge.kafka.topic_reader import TopicReader
from edge.config.settings import KafkaSettings, MetricsSettings, TopicsSettings

GROUP_ID = "edge-ops-dlq"  # never joined, never committed: assign-only reads
DELIVERY_TIMEOUT_S = 60.0


def _letter(msg) -> Letter:
    return Letter(msg.partition(), msg.offset(), msg.value(), msg.key(), list(msg.headers() or []))


def read_letters(kafka: KafkaSettings, selection: Selection) -> list[Letter]:
    """Every dead letter the selection picks, in partition then offset order."""
    reader = TopicReader(kafka, kafka.dlq_topic, group_id=GROUP_ID, client_id="edge-dlq")
    try:
        starts = reader.offsets_at(epoch_ms(selection.since) if selection.since else None)
        by_range = selection.start_offsets(reader.partitions())
        if by_range is not None:  # only the partitions named, from the first offset named (or --since)
            starts = {p: -1 if starts[p] == -1 else max(o, starts[p]) for p, o in by_range.items()}
        last = {p: max(b for q, _a, b in selection.ranges if q == p) for p in by_range or {}}
        letters = []
        finished = (lambda msg: msg.offset() > last[msg.partition()]) if last else None
        for batch in reader.read(starts, finished):
            letters.extend(letter for letter in map(_letter, batch) if selection(letter))
        return sorted(letters, key=lambda letter: (letter.partition, letter.offset))
    finally:
        reader.close()


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


def redrive(kafka: KafkaSettings, letters: list[Letter]) -> Counter:
    """Send each letter back to its stage's input topic; waits for every
    acknowledgement. Returns the count per target topic."""
    targets = {"raw": kafka.raw_topic, "parsed": kafka.parsed_topic}
    failures: list[str] = []
    sent: Counter = Counter()
    log = structlog.get_logger()
    producer = StageProducer(kafka, "edge-dlq-redrive", stop=StopSignal(), health=KafkaHealth(log),
                             supervisor=ServiceRuntime("dlq", MetricsSettings(), log, env={}))

    def delivered(err, msg) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}: {err.str()}")

    for letter in letters:
        topic = targets[REDRIVE_TARGET[letter.dead_letter.stage]]
        headers = redrive_headers(letter.headers, dlq_topic=kafka.dlq_topic, partition=letter.partition,
                                  offset=letter.offset)
        producer.produce(topic, letter.value, key=letter.key, headers=headers, on_delivery=delivered)
        producer.poll(0)
        sent[topic] += 1
    left = producer.flush(DELIVERY_TIMEOUT_S)
    if left or failures:
        detail = "; ".join(failures[:3]) or f"{left} not acknowledged within {DELIVERY_TIMEOUT_S:.0f} s"
        raise UnreachableError(
            f"kafka: {len(failures) + left} of {len(letters)} redriven records not delivered ({detail});"
            " redriving again is harmless"
        )
    return sent


# ------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def selection_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", action="append", default=[], help="only this reason (repeatable): "
                       "parse_error, partial, influx_rejected, bad_record")
        p.add_argument("--stage", action="append", default=[], choices=sorted(REDRIVE_TARGET),
                       help="only records of this stage (repeatable)")
        p.add_argument("--since", type=moment, help="only records dead-lettered at or after this moment (UTC unless given)")

    listing = sub.add_parser("list", help="a table of the dead letters", description="a table of the dead letters")
    selection_options(listing)
    listing.add_argument("--width", type=int, default=100, help="error column width (default 100)")

    show = sub.add_parser("show", help="headers and body of one dead letter",
                          description="headers and body of one dead letter, control bytes escaped")
    show.add_argument("address", metavar="PARTITION:OFFSET", help="as in the first column of `edge dlq list`")

    again = sub.add_parser("redrive", help="send dead letters back to their stage's input topic",
                           description="send dead letters back to their stage's input topic "
                                       "(parser -> raw, sink -> parsed)")
    selection_options(again)
    again.add_argument("--offsets", action="append", default=[], metavar="P:A-B",
                       help="only DLQ records PARTITION:FIRST-LAST, inclusive (repeatable; A-B on a one-partition DLQ)")
    again.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")


def _selection(args: argparse.Namespace, kafka: KafkaSettings) -> Selection:
    ranges: tuple = ()
    if getattr(args, "offsets", None):
        reader = TopicReader(kafka, kafka.dlq_topic, group_id=GROUP_ID, client_id="edge-dlq")
        try:
            partitions = reader.partitions()
        finally:
            reader.close()
        ranges = tuple(parse_range(text, partitions) for text in args.offsets)
    return Selection(frozenset(args.reason), frozenset(args.stage), ranges, args.since)


def run(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    kafka = TopicsSettings.load(getattr(args, "config", None)).kafka
    if args.action == "show":
        letter = read_one(kafka, args.address)
        for key, value in letter.headers:
            print(f"{safe_text(key.encode())}: {safe_text(value)}", file=out)
        print(f"key: {safe_text(letter.key) if letter.key is not None else '(none)'}", file=out)
        print("", file=out)
        print(safe_text(letter.value), file=out)
        return 0
    letters = read_letters(kafka, _selection(args, kafka))
    if args.action == "list":
        print(table([row(letter) for letter in letters], args.width), file=out)
        print(f"{len(letters)} dead letters in {kafka.dlq_topic}", file=out)
        return 0
    unknown = [letter for letter in letters if letter.dead_letter.stage not in REDRIVE_TARGET]
    for letter in unknown:
        print(f"redrive: {letter.address}: stage {letter.dead_letter.stage!r} unknown, left in the DLQ",
              file=sys.stderr)
    letters = [letter for letter in letters if letter.dead_letter.stage in REDRIVE_TARGET]
    print(table([row(letter) for letter in letters]), file=out)
    plan = Counter(REDRIVE_TARGET[letter.dead_letter.stage] for letter in letters)
    where = ", ".join(f"{n} -> {getattr(kafka, f'{t}_topic')}" for t, n in sorted(plan.items())) or "nothing"
    if args.dry_run:
        print(f"redrive (dry run, nothing sent): {where}", file=out)
        return 0
    redrive(kafka, letters)
    print(f"redrive: sent and acknowledged {len(letters)} records: {where}", file=out)
    return 0
