"""``edge replay --from T [--to T] [--site S]``: parse the raw topic again with
today's parser and settings, into the parsed topic, so the sink writes as usual.

Reads ``<prefix>.raw`` from the offsets at ``--from`` up to ``--to`` or the log
end captured at start (``edge.ops.replay_plan``), on its own consumer group
(``--group-id``, default ``edge-replay``; never the live parser's) without
joining it or committing: the live parser is not disturbed. Each message goes
through ``edge.parser.parse`` as in ``edge parse``: points to ``<prefix>.parsed``
keyed by series, unusable messages to the DLQ with the same headers (partly
unusable: points plus a ``partial`` dead letter). Idempotent: a replayed point
overwrites the stored one (same series and time). Waits for every delivery, then
exits; a progress bar with rate and ETA on a terminal, a log line every few
seconds otherwise. SIGINT/SIGTERM stops reading, waits for what was sent, and
says how far it got.

The Kafka I/O is this module's ``ReplayShell`` (reader + producer), kept apart
from the per-message work so it can move onto the shared stage runtime.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from prometheus_client import Counter

from edge.core.errors import UnreachableError, UsageError
from edge.runtime.supervision import ServiceRuntime
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import DeadLetters, StageProducer
from edge.core.moments import epoch_ms, moment
from edge.ops.replay_plan import Progress, Window, plan
from edge.kafka.topic_reader import TopicReader
from edge.parser import ParseError, TimeZones, parse
from edge.config.settings import ParserSettings
from edge.parser.site_activity import site_of_raw, site_of_series_key

DLQ_RECORDS = Counter("edge_replay_dlq_records", "Raw messages a replay sent to the DLQ", ["reason"])
DEFAULT_GROUP = "edge-replay"
LOG_EVERY_S = 5.0
FLUSH_TIMEOUT_S = 60.0


class ReplayShell:
    """Kafka I/O of a replay: read the raw range, produce to parsed and the DLQ."""

    def __init__(self, settings: ParserSettings, group_id: str, stop, log):
        kafka = settings.kafka
        self.kafka = kafka
        self.stop = stop
        self.reader = TopicReader(kafka, kafka.raw_topic, group_id=group_id, client_id="edge-replay")
        # The stages' own producer: backpressure that honours stop, dead letters.
        supervisor = ServiceRuntime("replay", settings.metrics, log, env={})
        self.producer = StageProducer(kafka, "edge-replay", stop=stop, supervisor=supervisor,
                                      health=KafkaHealth(log), **{"linger.ms": 20})
        self.dead = DeadLetters(self.producer, kafka.dlq_topic, "parser", DLQ_RECORDS)
        self.failures = 0
        self.last_failure = ""

    def _delivered(self, err, _msg) -> None:
        if err is not None:
            self.failures += 1
            self.last_failure = err.str()

    def produce(self, topic: str, value: bytes, key: bytes | None) -> bool:
        """False when the replay is stopping (what was not produced is replayed again)."""
        return self.producer.produce(topic, value, key=key, on_delivery=self._delivered)

    def dead_letter(self, msg, reason: str, error: str) -> bool:
        return self.dead.send(msg, reason, error, self._delivered)

    def flush(self) -> int:
        return self.producer.flush(FLUSH_TIMEOUT_S)

    def close(self) -> None:
        self.reader.close()


class Replay:
    def __init__(self, settings: ParserSettings, shell: ReplayShell, sites: set[str] | None, log):
        self.shell = shell
        self.zones = TimeZones.from_names(settings.parser.default_timezone, settings.parser.site_timezones)
        self.sites = sites or None
        self.parsed_topic = settings.kafka.parsed_topic
        self.dlq_topic = settings.kafka.dlq_topic
        self.log = log

    def run(self, window: Window, show_bar: bool) -> Progress:
        reader = self.shell.reader
        watermarks = reader.watermarks()
        ranges = plan(reader.offsets_at(window.from_ms), watermarks, reader.offsets_at(window.to_ms))
        progress = Progress(expected=sum(r.estimate for r in ranges.values()))
        self.log.info("replay_planned", topic=reader.topic, expected=progress.expected,
                      partitions={p: [r.start, r.end] for p, r in ranges.items()})
        bar = _bar(progress.expected, show_bar)
        began = last_log = time.monotonic()

        def finished(msg) -> bool:
            return ranges[msg.partition()].finished_at(msg.offset(), msg.timestamp()[1], window)

        starts = {p: r.start for p, r in ranges.items() if not r.empty}
        for batch in reader.read(starts, finished, stop=self.shell.stop.is_set):
            before = progress.messages + progress.skipped
            for msg in batch:
                self._handle(msg, window, progress)
            self.shell.producer.poll(0)
            progress.seconds = time.monotonic() - began
            if bar is not None:
                bar.update(progress.messages + progress.skipped - before)
                bar.set_postfix(points=progress.points, dlq=progress.dead_lettered, refresh=False)
            elif time.monotonic() - last_log >= LOG_EVERY_S:
                last_log = time.monotonic()
                self.log.info("replay_progress", messages=progress.messages, points=progress.points,
                              rate=round(progress.rate), eta_s=None if progress.eta_s is None else round(progress.eta_s))
        left = self.shell.flush()
        progress.seconds = time.monotonic() - began
        if bar is not None:
            bar.close()
        if left or self.shell.failures:
            raise UnreachableError(
                f"kafka: {left + self.shell.failures} records not delivered ({self.shell.last_failure or 'timeout'});"
                " replaying again is harmless"
            )
        return progress

    def _handle(self, msg, window: Window, progress: Progress) -> None:
        if not window.wanted(msg.timestamp()[1]):
            progress.skipped += 1
            return
        raw = msg.value() or b""
        try:
            result = parse(raw, self.zones)
        except ParseError as exc:
            if self.sites and site_of_raw(raw) not in self.sites:
                progress.skipped += 1
                return
            progress.messages += 1
            self._dead_letter(msg, "parse_error", str(exc), progress)
            return
        points = result.points
        if self.sites and site_of_series_key(points[0][0]) not in self.sites:
            progress.skipped += 1
            return
        progress.messages += 1
        produce = self.shell.produce
        for key, line in points:
            if not produce(self.parsed_topic, line, key):
                return
        progress.points += len(points)
        if result.problems:
            self._dead_letter(msg, "partial", "; ".join(result.problems), progress)

    def _dead_letter(self, msg, reason: str, error: str, progress: Progress) -> None:
        if self.shell.dead_letter(msg, reason, error):
            progress.dead_lettered += 1


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", desc="replay", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


# ------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=moment, required=True, metavar="T",
                        help="replay raw records from this moment (their Kafka timestamp; UTC unless given)")
    parser.add_argument("--to", dest="end", type=moment, metavar="T", help="up to this moment, exclusive (default: when the replay started)")
    parser.add_argument("--site", action="append", default=[], help="only this site's messages (repeatable)")
    parser.add_argument("--group-id", default=DEFAULT_GROUP,
                        help=f"consumer group of the replay (default {DEFAULT_GROUP}; never the live parser's)")
    parser.add_argument("--progress", choices=("auto", "bar", "log"), default="auto",
                        help="progress bar (default on a terminal) or log lines")


def run(args: argparse.Namespace) -> int:
    from edge.runtime import logs
    from edge.core.lifecycle import StopSignal

    settings = ParserSettings.load(getattr(args, "config", None))
    if args.group_id == settings.parser.group_id:
        raise UsageError(f"--group-id {args.group_id} is the live parser's group: replay uses its own")
    started = datetime.now(UTC)
    end = args.end or started
    if end <= args.start:
        raise UsageError("--to must be after --from")
    log = logs.configure(settings.log, "replay")
    stop = StopSignal().install()
    shell = ReplayShell(settings, args.group_id, stop, log)
    try:
        replay = Replay(settings, shell, set(args.site), log)
        show_bar = sys.stderr.isatty() if args.progress == "auto" else args.progress == "bar"
        progress = replay.run(Window(epoch_ms(args.start), epoch_ms(end)), show_bar)
    finally:
        shell.close()
    state = "interrupted" if stop.is_set() else "done"
    log.info(f"replay_{state}", **{k: v for k, v in vars(progress).items()})
    print(f"replay {state}: {progress.line()}")
    return 1 if stop.is_set() else 0
