"""``edge topics``: create the raw, parsed and DLQ topics (idempotent) and show or
(``--apply``) fix their configs' drift; ``--delete`` removes the prefix's topics
and its own consumer groups (``edge.kafka.teardown``), after a confirmation
unless ``--yes``. Refused (exit 6) while a group on those topics is in use: the
broker lists its members, or a parser or sink answering on its metrics port here
reads it (``edge.ops.running``); ``--force`` does not override that. Refused too
when the broker cannot tell (tansu keeps a group of static members ``STABLE``
with none listed after they stopped), unless ``--force``."""

from __future__ import annotations

import argparse
import sys

from edge.config.settings import KafkaSettings, TopicsSettings
from edge.core.errors import OperatorError, RefusedError, UsageError
from edge.core.words import count, noun
from edge.kafka import teardown
from edge.kafka.topics import ensure_topics
from edge.ops.running import Running, running_here

STOP = ("stop the services that read this prefix's topics (`systemctl stop edge-bridge edge-parser edge-sink`,"
        " or end `edge bridge`, `edge parse`, `edge sink` and any `edge replay` where they run in a terminal)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true",
                        help="set the configs of existing topics that drift from the settings"
                             " (retention.ms, min.insync.replicas, cleanup.policy)")
    parser.add_argument("--delete", action="store_true",
                        help="delete the prefix's topics and the consumer groups that only read them"
                             " (asks first; refused while a group is in use or the broker cannot tell)")
    parser.add_argument("--yes", action="store_true", help="with --delete: do not ask")
    parser.add_argument("--force", action="store_true",
                        help="with --delete: delete even when the broker cannot tell whether a group is in use"
                             " (tansu, static members); stop the services first. Still refused when the broker"
                             " lists members or a service reading the group answers on its metrics port here")


def _in_use(plan: teardown.Teardown, running: list[Running]) -> list[str]:
    """Each group in use, with the evidence: members listed, or a service here reading it."""
    held = {r.group: r for r in running if r.group}
    listed = [f"{g.id} ({count(g.members, 'member')} listed by the broker)" for g in plan.busy]
    return listed + [f"{g.id} ({held[g.id].text()})" for g in plan.unsure if g.id in held]


def refusal(plan: teardown.Teardown, force: bool, running: list[Running]) -> str | None:
    """Why deleting is refused, or None: safe, or the operator forced what the broker cannot tell."""
    in_use = _in_use(plan, running)
    if in_use:
        return (f"{noun(len(in_use), 'consumer group')} {'; '.join(in_use)} in use on these topics: {STOP},"
                " then run again; nothing deleted (--force does not override this)")
    if plan.unsure and not force:
        many = len(plan.unsure) > 1
        reported = ", ".join(f"{g.id} ({g.state})" for g in plan.unsure)
        others = "".join(f"; note: {r.text()}" for r in running)
        return (f"cannot tell whether {noun(len(plan.unsure), 'consumer group')} {reported}"
                f" {'are' if many else 'is'} in use: the broker reports {'them' if many else 'it'} in that state"
                " and lists no members. On tansu a running group shows so, and so does a group of static members"
                " (group.instance.id, from kafka.group_instance_id) long after they stopped cleanly, so waiting"
                f" does not clear it. To delete: {STOP}, then run again with --force{others}; nothing deleted")
    return None


def _check(plan: teardown.Teardown, force: bool, running: list[Running]) -> None:
    why = refusal(plan, force, running)
    if why:
        raise RefusedError(why)


def _confirmed(prefix: str) -> bool:
    print(f"Delete these for prefix {prefix!r}? Their data cannot be recovered. [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        print()  # no answer (end of input): the prompt's line still ends
    return answer.strip().lower() in {"y", "yes"}


def _delete(kafka: KafkaSettings, args: argparse.Namespace, metrics) -> int:
    plan = teardown.plan(kafka)
    for line in plan.lines():
        print(line, flush=True)
    if plan.empty:
        print(f"topics: nothing to delete for prefix {kafka.topic_prefix!r}")
        return 0
    _check(plan, args.force, running_here(args.config, metrics))
    for group in plan.unsure:
        print(f"consumer group {group.id}: the broker cannot tell whether it is in use ({group.state},"
              " no members listed); deleting it as --force says", flush=True)
    if not args.yes and not _confirmed(kafka.topic_prefix):
        raise OperatorError("not confirmed: nothing deleted (--yes skips the question)")
    # A service may have started while we asked.
    _check(teardown.plan(kafka), args.force, running_here(args.config, metrics))
    for line in teardown.delete(kafka, plan):
        print(line, flush=True)
    print(f"topics: deleted {count(len(plan.topics), 'topic')} and {count(len(plan.groups), 'consumer group')}"
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
    for flag in ("yes", "force"):
        if getattr(args, flag) and not args.delete:
            raise UsageError(f"--{flag} goes with --delete")
    settings = TopicsSettings.load(args.config)
    return _delete(settings.kafka, args, settings.metrics) if args.delete else _ensure(settings.kafka, args.apply)
