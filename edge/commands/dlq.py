"""``edge dlq list | show | redrive``: the dead letters, one row per failure, and
sending them back through the pipeline once their cause is fixed.

- ``list [--reason R] [--stage S] [--since T] [--all]``: one row per failure
  (stage, reason, body; ``edge.ops.dlq_failures``) with its copies, first and
  last seen (repeat markers included) and state, sorted by last seen; resolved
  failures only with ``--all``.
- ``show ADDRESS [--raw | --out FILE]``: every header and the body of one record
  (``PARTITION:OFFSET``), control bytes and invalid UTF-8 escaped; ``--raw`` writes
  the body byte-exact to stdout, ``--out`` to a file.
- ``redrive [selection] [--offsets P:A-B] [--all] [--dry-run]``: the failures
  ``list`` would show with the same options go back to their stage's input topic,
  one record each, and are marked resolved once Kafka acknowledged them.

``--reason`` and ``--stage`` take only the values in ``edge.core.dlq``: anything
else is a usage error (exit 2) naming the valid ones.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from edge.config.settings import KafkaSettings, TopicsSettings
from edge.core.dlq import REASONS, REDRIVE_TARGET
from edge.core.errors import UsageError
from edge.core.moments import moment
from edge.core.words import count
from edge.ops.dlq import read_letters, read_one, redrive
from edge.ops.dlq_failures import COLUMNS, RESOLVED, Failure, failure_row, group_failures, select
from edge.ops.dlq_view import Selection, parse_range, safe_text, table


def _selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", action="append", default=[], choices=list(REASONS), metavar="REASON",
                   help=f"only this reason (repeatable): {', '.join(REASONS)}")
    p.add_argument("--stage", action="append", default=[], choices=sorted(REDRIVE_TARGET), metavar="STAGE",
                   help=f"only this stage (repeatable): {', '.join(sorted(REDRIVE_TARGET))}")
    p.add_argument("--since", type=moment, help="only failures seen at or after this moment (UTC unless given)")
    p.add_argument("--all", action="store_true", help="resolved failures too (redriven, not seen since)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="one row per failure: copies, first and last seen, state",
                             description="one row per failure (stage, reason, body): its copies, first and last"
                                         " seen, state (open | reopened | resolved); sorted by last seen")
    _selection_options(listing)
    listing.add_argument("--width", type=int, default=100, help="error column width (default 100)")

    show = sub.add_parser("show", help="headers and body of one dead letter",
                          description="headers and body of one dead letter, control bytes escaped;"
                                      " --raw or --out for the body byte-exact")
    show.add_argument("address", metavar="PARTITION:OFFSET", help="as in the first column of `edge dlq list`")
    body = show.add_mutually_exclusive_group()
    body.add_argument("--raw", action="store_true", help="write only the body, byte-exact, to stdout")
    body.add_argument("--out", type=Path, metavar="FILE", help="write only the body, byte-exact, to FILE")

    again = sub.add_parser("redrive", help="send failures back to their stage's input topic",
                           description="send the failures `edge dlq list` shows with the same options back to"
                                       " their stage's input topic (parser -> raw, sink -> parsed), one record"
                                       " each, and mark them resolved")
    _selection_options(again)
    again.add_argument("--offsets", action="append", default=[], metavar="P:A-B",
                       help="only failures with a copy at PARTITION:FIRST-LAST, inclusive"
                            " (repeatable; A-B on a one-partition DLQ)")
    again.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")


def _show(kafka: KafkaSettings, args: argparse.Namespace) -> int:
    letter = read_one(kafka, args.address)
    body = letter.value or b""
    if args.out is not None:
        args.out.write_bytes(body)
        print(f"dlq show: wrote {len(body)} bytes of {kafka.dlq_topic}:{letter.address} to {args.out}")
        return 0
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    for key, value in letter.headers:
        print(f"{safe_text(key.encode())}: {safe_text(value)}")
    print(f"key: {safe_text(letter.key) if letter.key is not None else '(none)'}")
    print("")
    print(safe_text(letter.value))
    return 0


def _failures(kafka: KafkaSettings, args: argparse.Namespace) -> tuple[list[Failure], int]:
    """The failures the options pick (resolved ones only with --all), and how
    many resolved ones they pick besides."""
    letters, partitions = read_letters(kafka)
    ranges = tuple(parse_range(text, partitions) for text in getattr(args, "offsets", []))
    picked = select(group_failures(letters), Selection(frozenset(args.reason), frozenset(args.stage), ranges,
                                                       args.since))
    shown = [f for f in picked if args.all or f.state != RESOLVED]
    return shown, len(picked) - len(shown)


def _list(kafka: KafkaSettings, args: argparse.Namespace) -> int:
    shown, hidden = _failures(kafka, args)
    print(table([failure_row(f) for f in shown], args.width, COLUMNS))
    copies = sum(len(f.copies) for f in shown)
    repeats = sum(len(f.repeats) for f in shown)
    summary = f"{count(len(shown), 'failure')} ({count(copies, 'dead-letter record')}" + (
        f", {count(repeats, 'repeat marker')}" if repeats else "") + f") in {kafka.dlq_topic}"
    if hidden:
        summary += f"; {hidden} resolved not shown (--all shows them)"
    print(summary)
    return 0


def _redrive(kafka: KafkaSettings, args: argparse.Namespace) -> int:
    chosen, hidden = _failures(kafka, args)
    for failure in chosen:
        if failure.latest.dead_letter.stage not in REDRIVE_TARGET:
            print(f"redrive: {failure.address}: stage {failure.latest.dead_letter.stage!r} unknown,"
                  " left in the DLQ", file=sys.stderr)
        elif not failure.copies:
            d = failure.latest.dead_letter
            print(f"redrive: {failure.address}: its body aged out of the DLQ (only repeat markers left), left out;"
                  f" it is at {d.source_topic}:{d.source_partition}:{d.source_offset}", file=sys.stderr)
    chosen = [f for f in chosen if f.latest.dead_letter.stage in REDRIVE_TARGET and f.copies]
    print(table([failure_row(f) for f in chosen], columns=COLUMNS))
    plan = Counter(REDRIVE_TARGET[f.latest.dead_letter.stage] for f in chosen)
    where = ", ".join(f"{n} -> {getattr(kafka, f'{t}_topic')}" for t, n in sorted(plan.items())) or "nothing"
    if hidden:
        print(f"redrive: {count(hidden, 'resolved failure')} left out (--all sends them too)")
    if args.dry_run:
        print(f"redrive (dry run, nothing sent): {where}")
        return 0
    redrive(kafka, chosen)
    print(f"redrive: sent and acknowledged {count(len(chosen), 'record')}: {where}; {len(chosen)} marked resolved")
    return 0


def run(args: argparse.Namespace) -> int:
    kafka = TopicsSettings.load(getattr(args, "config", None)).kafka
    if args.action == "show":
        return _show(kafka, args)
    if args.action == "list":
        return _list(kafka, args)
    if args.action == "redrive":
        return _redrive(kafka, args)
    raise UsageError(f"unknown action {args.action!r}")
