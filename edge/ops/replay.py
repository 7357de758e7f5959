"""``edge replay``: parse a stretch of the raw topic again with today's parser
settings, into the parsed topic, so the sink writes as usual. Library code; the
command line is ``edge.commands.replay``.

Each raw record goes through ``edge.parser.handler.RawHandler``, the live parse
stage's own handler: the same time zones, the same received time (the AMQP
timestamp the record carries) for a fall-back hour, the same DLQ reasons, the
same ``edge_parser_*`` counters. Reads on its own consumer group without joining
it or committing (the live parser is not disturbed); waits for every delivery,
then exits. First it surveys the topic and says what it will read
(``edge.ops.replay_plan``); ``dry_run`` stops there. The run reads exactly the
planned offsets and ends with a summary of what became of each message.

One DLQ record per failure: before replaying, the run reads the DLQ once and
collects the failure ids it holds (``edge.ops.dlq.known_failures``); a message
refused again for a failure already there, or already written by this run, is
counted (``edge_parser_dlq_known_total{reason}``, the summary's "already in the
DLQ") and not written again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge.config.masking import masked
from edge.config.settings import ParserSettings
from edge.core.errors import UnreachableError, UsageError
from edge.kafka.health import KafkaHealth
from edge.kafka.producer import DeadLetters, StageProducer
from edge.kafka.topic_reader import TopicReader
from edge.ops.config_check import to_toml
from edge.ops.dlq import known_failures
from edge.ops.replay_plan import PartitionPlan, Plan, Progress, Window, checked_end, checked_start, end_offset, start_offset
from edge.parser.handler import RawHandler
from edge.parser.metrics import DLQ_KNOWN, DLQ_RECORDS, FAMILIES
from edge.runtime.progress import ProgressReport, want_bar
from edge.runtime.supervision import ServiceRuntime
from edge.runtime.textfile import write_textfile

DEFAULT_GROUP = "edge-replay"
FLUSH_TIMEOUT_S = 60.0
# The replay's producer settings on top of ``producer_config`` (bench.replay's
# broker floor produces with the same). A replay waits for every delivery
# (``flush``) and counts only the failed ones: librdkafka reports only those, not
# 17 successes per message through a Python callback each.
PRODUCER_SETTINGS = {"linger.ms": 20, "delivery.report.only.error": True}


@dataclass(frozen=True)
class ReplayOptions:
    window: Window
    sites: tuple[str, ...] = ()
    group_id: str = DEFAULT_GROUP
    given_to: bool = False  # --to was given (else the window ends when the replay started)
    dry_run: bool = False
    progress: str = "auto"  # auto | bar | log
    metrics_textfile: str | None = None


class ReplayShell:
    """Kafka I/O of a replay: read the raw range, produce to parsed and the DLQ."""

    def __init__(self, settings: ParserSettings, group_id: str, stop, log):
        kafka = settings.kafka
        self.stop = stop
        self.reader = TopicReader(kafka, kafka.raw_topic, group_id=group_id, client_id="edge-replay")
        # The stages' own producer: backpressure that honours stop, dead letters.
        supervisor = ServiceRuntime("replay", settings.metrics, log, env={})
        self.producer = StageProducer(kafka, "edge-replay", stop=stop, supervisor=supervisor,
                                      health=KafkaHealth(log), **PRODUCER_SETTINGS)
        # Filled from the DLQ just before the run (``know_the_dlq``), and by the run itself.
        self.dead = DeadLetters(self.producer, kafka.dlq_topic, "parser", DLQ_RECORDS, known=set(),
                                known_counter=DLQ_KNOWN)
        self.handler = RawHandler.from_settings(settings, self.producer.produce, self.dead.send)
        self.failures = 0
        self.last_failure = ""

    def know_the_dlq(self, kafka, log) -> None:
        """The failure ids the DLQ holds now: a replay writes none of them again."""
        known = known_failures(kafka)
        self.dead.known.update(known)
        log.info("replay_dlq_read", topic=kafka.dlq_topic, failures=len(known))

    def delivered(self, err, _msg) -> None:
        if err is not None:
            self.failures += 1
            self.last_failure = err.str()

    def flush(self) -> int:
        return self.producer.flush(FLUSH_TIMEOUT_S)

    def close(self) -> None:
        self.reader.close()


def survey(reader: TopicReader, window: Window, given_to: bool) -> list[PartitionPlan]:
    """Per partition, the offsets the replay reads and the timestamps at both ends
    (``edge.ops.replay_plan`` says why the broker's answers are checked)."""
    marks = reader.extents()
    log_end = {p: end for p, (_low, end) in marks.items()}
    at_from = reader.offsets_at(window.from_ms)
    at_to = reader.offsets_at(window.to_ms) if given_to else {}
    starts = {p: start_offset(at_from.get(p, -1), marks[p][0], log_end[p]) for p in marks}

    before = reader.first_records({p: max(marks[p][0], s - 1) for p, s in starts.items()}, 2)
    starts = {p: checked_start(s, marks[p][0], _stamps(before[p]), window) for p, s in starts.items()}
    ends = {p: end_offset(at_to.get(p) if given_to else None, s, log_end[p]) for p, s in starts.items()}
    at_end = reader.first_records({p: e for p, e in ends.items() if e < log_end[p]}, 1)
    ends = {p: checked_end(e, log_end[p], _stamps(at_end.get(p, [])), window) for p, e in ends.items()}

    firsts = reader.first_records({p: s for p, s in starts.items() if s < ends[p]}, 1)
    lasts = reader.first_records({p: e - 1 for p, e in ends.items() if starts[p] < e}, 1)
    return [PartitionPlan(p, starts[p], ends[p], _ts(firsts.get(p)), _ts(lasts.get(p))) for p in sorted(marks)]


def _stamps(records: list) -> list[tuple[int, int]]:
    return [(m.offset(), m.timestamp()[1]) for m in records]


def _ts(records: list | None) -> int | None:
    return records[0].timestamp()[1] if records else None


def settings_shown(settings: ParserSettings, sites: tuple[str, ...]) -> list[str]:
    """The settings that decide a replay's answers (time zones, the site filter)
    and which cluster it rewrites, as TOML, secrets masked."""
    kafka = settings.kafka
    table = {
        "kafka": {"bootstrap_servers": kafka.bootstrap_servers, "topic_prefix": kafka.topic_prefix,
                  "sasl_password": kafka.sasl_password, "client": dict(kafka.client)},
        "parser": {"default_timezone": settings.parser.default_timezone,
                   "site_timezones": dict(settings.parser.site_timezones)},
        "replay": {"sites": list(sites)},
    }
    return to_toml(masked(table), notes={})


class Replay:
    def __init__(self, shell: ReplayShell, sites: tuple[str, ...], log):
        self.shell = shell
        self.handler = shell.handler
        self.sites = set(sites) or None
        self.log = log

    def run(self, plan: Plan, show_bar: bool) -> Progress:
        ends = {p.partition: p.end for p in plan.partitions if p.count}
        progress = Progress(expected=plan.total)
        report = ProgressReport(plan.total, unit="msg", desc="replay", bar=show_bar, log=self.log,
                                event="replay_progress")
        began = time.monotonic()
        producer = self.shell.producer
        try:
            for batch in self.shell.reader.read({p.partition: p.start for p in plan.partitions if p.count},
                                                lambda msg: msg.offset() >= ends[msg.partition()],
                                                stop=self.shell.stop.is_set):
                before = progress.read
                for msg in batch:
                    if not self._handle(msg, plan.window, progress):
                        break  # stopping: what was not produced is replayed again
                producer.poll(0)
                progress.seconds = time.monotonic() - began
                report.update(progress.read - before, points=progress.points, dlq=progress.dead_lettered)
        finally:
            report.close()
        left = self.shell.flush()
        progress.seconds = time.monotonic() - began
        progress.known = self.shell.dead.skipped
        if left or self.shell.failures:
            raise UnreachableError(
                f"kafka: {left + self.shell.failures} records not delivered ({self.shell.last_failure or 'timeout'});"
                " replaying again is harmless"
            )
        return progress

    def _handle(self, msg, window: Window, progress: Progress) -> bool:
        if not window.wanted(msg.timestamp()[1]):
            progress.outside_window += 1
            return True
        outcome = self.handler.outcome(msg)
        if self.sites and outcome.site(msg) not in self.sites:
            progress.other_sites += 1
            return True
        if not self.handler.emit(msg, outcome, self.shell.delivered):
            return False
        progress.outcomes[outcome.kind] += 1
        if outcome.result is not None:
            progress.points += len(outcome.result.points)
        return True


def replay(settings: ParserSettings, options: ReplayOptions, *, stop, log, out) -> int:
    """Survey, print the plan, then (unless ``dry_run``) replay and print the
    summary; 0 when done, 1 when stopped part-way."""
    if options.group_id == settings.parser.group_id:
        raise UsageError(f"--group-id {options.group_id} is the live parser's group: replay uses its own")
    shell = ReplayShell(settings, options.group_id, stop, log)
    try:
        kafka = settings.kafka
        plan = Plan(kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic, options.window,
                    survey(shell.reader, options.window, options.given_to), options.sites,
                    settings_shown(settings, options.sites))
        print("\n".join(plan.lines()), file=out, flush=True)
        log.info("replay_planned", topic=plan.source, messages=plan.total,
                 partitions={p.partition: [p.start, p.end] for p in plan.partitions if p.count})
        if options.dry_run:
            print("dry run: nothing was replayed", file=out)
            return 0
        shell.know_the_dlq(kafka, log)
        try:
            progress = Replay(shell, options.sites, log).run(plan, want_bar(options.progress))
        finally:
            if options.metrics_textfile:
                write_textfile(options.metrics_textfile, FAMILIES)
    finally:
        shell.close()
    state = "interrupted" if stop.is_set() else "done"
    log.info(f"replay_{state}", **progress.counts())
    print("\n".join(progress.summary(state)), file=out)
    return 1 if stop.is_set() else 0
