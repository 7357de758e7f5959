"""``edge topics --delete``: remove a prefix's topics and the consumer groups that
are its own, after trying the pipeline under another prefix.

Which groups are the prefix's: every group on the broker whose committed offsets
are all on the prefix's topics (``<prefix>.raw``, ``.parsed``, ``.dlq``). A group
with offsets on any other topic as well is kept and named (its offsets on the
prefix's topics go with those topics); a group with no committed offsets at all
cannot be told apart from someone else's and is never touched.

Before deleting, each group with offsets on the prefix's topics is judged from
what the broker reports (``activity``):

- members listed: in use (a running parser, sink or replay): refused, always;
- ``EMPTY`` or ``DEAD``: idle;
- any other state with no members listed: the broker cannot tell. tansu (the
  development broker) never lists members: a running group shows as ``STABLE``
  with none, and so does a group of static members (``group.instance.id``, the
  default ``kafka.group_instance_id``) long after they stopped cleanly, even
  across restarts, while a dynamic group turns ``EMPTY``. Refused unless the
  operator, having stopped the services, says ``--force``.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from edge.config.settings import KafkaSettings
from edge.core.errors import UnreachableError
from edge.kafka.config import admin_config
from edge.kafka.topics import TIMEOUT_S, existing_topics, topic_names

IDLE_STATES = {ConsumerGroupState.EMPTY.name, ConsumerGroupState.DEAD.name}
IN_USE, IDLE, CANNOT_TELL = "in use", "idle", "cannot tell"


# ---------------------------------------------------------------- pure


@dataclass(frozen=True)
class Group:
    id: str
    topics: frozenset[str]  # the topics it has committed offsets on
    state: str = ConsumerGroupState.EMPTY.name  # as the broker reports it: STABLE, EMPTY, ...
    members: int = 0  # the members the broker lists

    @property
    def activity(self) -> str:
        """IN_USE, IDLE or CANNOT_TELL, from the broker's evidence alone."""
        if self.members:
            return IN_USE
        return IDLE if self.state in IDLE_STATES else CANNOT_TELL


@dataclass(frozen=True)
class Teardown:
    """What ``--delete`` would do for one prefix."""

    topics: tuple[str, ...]  # the prefix's topics that exist
    groups: tuple[str, ...]  # groups with offsets only on those: deleted
    kept: tuple[tuple[str, tuple[str, ...]], ...]  # (group, its other topics): not the prefix's alone
    busy: tuple[Group, ...]  # groups on the prefix's topics with members listed: refuse, always
    unsure: tuple[Group, ...]  # groups on them the broker cannot tell about: refuse unless forced

    @property
    def empty(self) -> bool:
        return not self.topics and not self.groups

    def lines(self) -> list[str]:
        out = [f"topic {name}: to delete" for name in self.topics]
        out += [f"consumer group {group}: to delete" for group in self.groups]
        out += [f"consumer group {group}: kept (also has offsets on {', '.join(others)})"
                for group, others in self.kept]
        return out


def teardown_plan(prefix_topics: list[str], existing: set[str], groups: list[Group]) -> Teardown:
    ours = set(prefix_topics)
    touching = [g for g in groups if g.topics & ours]
    return Teardown(
        topics=tuple(t for t in prefix_topics if t in existing),
        groups=tuple(sorted(g.id for g in touching if g.topics <= ours)),
        kept=tuple(sorted((g.id, tuple(sorted(g.topics - ours))) for g in touching if not g.topics <= ours)),
        busy=tuple(sorted((g for g in touching if g.activity == IN_USE), key=lambda g: g.id)),
        unsure=tuple(sorted((g for g in touching if g.activity == CANNOT_TELL), key=lambda g: g.id)),
    )


# ---------------------------------------------------------------- broker


def _result(future, what: str):
    try:
        return future.result(TIMEOUT_S)
    except KafkaException as exc:
        raise UnreachableError(f"kafka: {what}: {exc.args[0].str()}") from None


def _groups(admin: AdminClient) -> list[Group]:
    listed = _result(admin.list_consumer_groups(request_timeout=TIMEOUT_S), "list consumer groups")
    ids = sorted(g.group_id for g in listed.valid)
    if not ids:
        return []
    described = admin.describe_consumer_groups(ids, request_timeout=TIMEOUT_S)
    groups = []
    for group_id in ids:
        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)],
                                                    request_timeout=TIMEOUT_S)[group_id]
        topics = frozenset(tp.topic for tp in _result(offsets, f"offsets of group {group_id}").topic_partitions
                           if tp.offset >= 0)
        description = _result(described[group_id], f"describe group {group_id}")
        groups.append(Group(group_id, topics, description.state.name, len(description.members)))
    return groups


def plan(kafka: KafkaSettings) -> Teardown:
    """What deleting this prefix would remove, read from the broker now."""
    admin = AdminClient(admin_config(kafka, "edge-topics"))
    existing = existing_topics(admin, kafka)
    return teardown_plan(topic_names(kafka), existing, _groups(admin))


def _settle(futures: dict, kind: str, done: list[str], refused: list[str]) -> None:
    """Wait for each deletion the admin client started; file it as done or refused."""
    for name, future in futures.items():
        try:
            future.result(TIMEOUT_S)
            done.append(f"{kind} {name}: deleted")
        except KafkaException as exc:
            refused.append(f"{kind} {name}: {exc.args[0].str()}")


def delete(kafka: KafkaSettings, teardown: Teardown) -> list[str]:
    """Delete the plan's groups, then its topics; one line per thing deleted.
    Raises UnreachableError naming what the broker refused (the rest is done)."""
    admin = AdminClient(admin_config(kafka, "edge-topics"))
    done: list[str] = []
    refused: list[str] = []
    if teardown.groups:
        futures = admin.delete_consumer_groups(list(teardown.groups), request_timeout=TIMEOUT_S)
        _settle(futures, "consumer group", done, refused)
    if teardown.topics:
        _settle(admin.delete_topics(list(teardown.topics), request_timeout=TIMEOUT_S), "topic", done, refused)
    if refused:
        raise UnreachableError(f"kafka refused to delete {'; '.join(refused)} (deleted: {len(done)})")
    return done
