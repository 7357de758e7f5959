"""``edge topics``: create the raw, parsed and DLQ topics (idempotent) and show or
(``--apply``) fix their configs' drift; ``--delete`` removes the prefix's topics
and its own consumer groups (``edge.kafka.teardown``), after a confirmation
unless ``--yes``, refused (exit 6) while one of those groups has active members."""

from __future__ import annotations

import argparse
import sys

from edge.config.settings import KafkaSettings, TopicsSettings
from edge.core.errors import OperatorError, RefusedError, UsageError
from edge.kafka import teardown
from edge.kafka.topics import ensure_topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true",
                        help="set the configs of existing topics that drift from the settings"
                             " (retention.ms, min.insync.replicas, cleanup.policy)")
    parser.add_argument("--delete", action="store_true",
                        help="delete the prefix's topics and the consumer groups that only read them"
                             " (asks first; refused while a group has active members)")
    parser.add_argument("--yes", action="store_true", help="with --delete: do not ask")


def _refuse_if_busy(busy: tuple[str, ...]) -> None:
    if busy:
        raise RefusedError(
            f"consumer group {', '.join(busy)} has active members on these topics: stop the services reading"
            " them (systemctl stop edge-parser edge-sink, a running replay) and try again; nothing deleted"
        )


def _confirmed(prefix: str) -> bool:
    print(f"Delete these for prefix {prefix!r}? Their data cannot be recovered. [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        print()  # no answer (end of input): the prompt's line still ends
    return answer.strip().lower() in {"y", "yes"}


def _delete(kafka: KafkaSettings, assume_yes: bool) -> int:
    plan = teardown.plan(kafka)
    for line in plan.lines():
        print(line, flush=True)
    if plan.empty:
        print(f"topics: nothing to delete for prefix {kafka.topic_prefix!r}")
        return 0
    _refuse_if_busy(plan.busy)
    if not assume_yes and not _confirmed(kafka.topic_prefix):
        raise OperatorError("not confirmed: nothing deleted (--yes skips the question)")
    _refuse_if_busy(teardown.plan(kafka).busy)  # a service may have started while we asked
    for line in teardown.delete(kafka, plan):
        print(line, flush=True)
    print(f"topics: deleted {len(plan.topics)} topics and {len(plan.groups)} consumer groups"
          f" of prefix {kafka.topic_prefix!r}")
    return 0


def _ensure(kafka: KafkaSettings, apply: bool) -> int:
    report = ensure_topics(kafka, apply=apply)
    for status in report:
        print(status.line(), flush=True)
    code = 0
    if any(s.partitions == 0 for s in report):
        print("topics: some topics have no partitions in the cluster metadata", flush=True)
        code = 1
    for status in report:
        if status.partitions and status.partitions != kafka.partitions:
            print(f"topics: note: {status.name} has {status.partitions} partitions, config says {kafka.partitions}"
                  " (not changed: more partitions would move series between them)", flush=True)
        if status.replication and status.replication != kafka.replication_factor:
            print(f"topics: note: {status.name} has replication factor {status.replication}, config says"
                  f" {kafka.replication_factor} (not changed: reassign partitions with Kafka's tools)", flush=True)
    if any(s.configs_error for s in report):
        code = 1
    elif any(s.drift and not s.applied for s in report):
        print("topics: configs drift from the settings; `edge topics --apply` sets them", flush=True)
    return code


def run(args: argparse.Namespace) -> int:
    if args.delete and args.apply:
        raise UsageError("--delete and --apply do not go together")
    if args.yes and not args.delete:
        raise UsageError("--yes goes with --delete")
    kafka = TopicsSettings.load(args.config).kafka
    return _delete(kafka, args.yes) if args.delete else _ensure(kafka, args.apply)
