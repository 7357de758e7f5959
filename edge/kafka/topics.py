"""``edge topics``: create ``<prefix>.raw``, ``<prefix>.parsed`` and ``<prefix>.dlq``
with the configs the pipeline relies on, and show (``--apply``: fix) the drift of
existing ones.

Partition count and replication factor come from ``[kafka]``, and so do the topic
configs (``topic_configs``):

- ``retention.ms``: ``kafka.raw_retention_ms`` (default 7 days: how far back
  ``edge replay`` can reach), ``parsed_retention_ms`` (7 days),
  ``dlq_retention_ms`` (30 days);
- ``min.insync.replicas = min(2, replication_factor)``: with ``acks=all`` a write
  is then on two brokers before it is acknowledged (one on a one-broker cluster);
- ``cleanup.policy = delete`` (never compaction: records are not keyed by identity).

Idempotent: a topic that exists keeps its partitions (reported, never changed: on
Kafka, adding partitions to a keyed topic moves series between partitions) and
replication factor (reported), its configs are described and any drift from the
settings printed; ``--apply`` sets the drifting configs with an incremental alter
(only those keys; the topic's other configs stay). A concurrent creator winning
the race counts as "exists". A broker that cannot describe or alter topic configs
gets one clear line naming what it refused, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from edge.core.errors import UnreachableError
from edge.kafka.config import admin_config
from edge.config.settings import KafkaSettings

TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0

# Answers that mean "this broker does not do that", rather than "not you" or "not now".
UNSUPPORTED = {
    KafkaError._UNSUPPORTED_FEATURE,
    KafkaError.UNSUPPORTED_VERSION,
    KafkaError.INVALID_REQUEST,
    KafkaError.POLICY_VIOLATION,
}


# ---------------------------------------------------------------- pure


def topic_names(kafka: KafkaSettings) -> list[str]:
    return [kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic]


def topic_configs(kafka: KafkaSettings) -> dict[str, dict[str, str]]:
    """Topic name -> the configs it must have, as Kafka strings."""
    in_sync = str(min(2, kafka.replication_factor))

    def configs(retention_ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "min.insync.replicas": in_sync, "retention.ms": str(retention_ms)}

    retention = (kafka.raw_retention_ms, kafka.parsed_retention_ms, kafka.dlq_retention_ms)
    return {name: configs(ms) for name, ms in zip(topic_names(kafka), retention)}


@dataclass(frozen=True)
class Drift:
    key: str
    actual: str | None  # None: not set on the topic, the broker's default applies
    wanted: str

    def text(self) -> str:
        actual = "(broker default)" if self.actual is None else self.actual
        return f"{self.key}={actual} (settings: {self.wanted})"


def config_drift(wanted: dict[str, str], actual: dict[str, str | None]) -> list[Drift]:
    """The keys whose value on the topic differs from the settings, sorted."""
    return [Drift(k, actual.get(k), v) for k, v in sorted(wanted.items()) if actual.get(k) != v]


def broker_refusal(action: str, exc: Exception) -> str:
    """One line for a failed describe/alter: what, and the broker's own words."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return f"cannot {action}: {type(exc).__name__}: {exc}"
    why = " (this broker does not support it)" if err.code() in UNSUPPORTED else ""
    return f"the broker refused to {action}{why}: {err.name()}: {err.str()}"


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    action: str  # "created" | "exists"
    replication: int = 0
    drift: tuple[Drift, ...] = ()
    applied: bool = False  # the drift was set by --apply (and read back)
    configs_error: str = ""  # the configs could not be read or set

    def line(self) -> str:
        text = f"topic {self.name}: {self.action} (partitions={self.partitions})"
        if self.configs_error:
            return f"{text}; configs: {self.configs_error}"
        if not self.drift:
            return f"{text}; configs as in the settings"
        drift = ", ".join(d.text() for d in self.drift)
        return f"{text}; {'applied' if self.applied else 'drift'}: {drift}"


# ---------------------------------------------------------------- broker


def _per_topic(action: str, request, resources: list[ConfigResource], timeout_s: float) -> dict[str, object]:
    """Topic -> the broker's answer for it, or one line (str) saying what it refused."""
    try:
        futures = request(resources, request_timeout=timeout_s)
    except KafkaException as exc:
        return {r.name: broker_refusal(action, exc) for r in resources}
    answers: dict[str, object] = {}
    for resource, future in futures.items():
        try:
            answers[resource.name] = future.result(timeout_s)
        except KafkaException as exc:
            answers[resource.name] = broker_refusal(action, exc)
    return answers


def _describe(admin: AdminClient, names: list[str], timeout_s: float) -> dict[str, dict[str, str | None] | str]:
    """Topic -> its configs, or the reason they could not be read."""
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    answers = _per_topic("describe topic configs", admin.describe_configs, resources, timeout_s)
    return {n: a if isinstance(a, str) else {k: e.value for k, e in a.items()} for n, a in answers.items()}


def _alter(admin: AdminClient, changes: dict[str, list[Drift]], timeout_s: float) -> dict[str, str]:
    """Set the drifting keys (incremental alter: only those); topic -> error, if any."""
    resources = [
        ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
            ConfigEntry(d.key, d.wanted, incremental_operation=AlterConfigOpType.SET) for d in drift
        ])
        for name, drift in changes.items()
    ]
    answers = _per_topic("alter topic configs", admin.incremental_alter_configs, resources, timeout_s)
    return {n: a for n, a in answers.items() if isinstance(a, str)}


def _create_missing(admin: AdminClient, kafka: KafkaSettings, missing: list[str], timeout_s: float) -> set[str]:
    if not missing:
        return set()
    wanted = topic_configs(kafka)
    futures = admin.create_topics(
        [NewTopic(n, kafka.partitions, kafka.replication_factor, config=wanted[n]) for n in missing],
        request_timeout=timeout_s,
    )
    created: set[str] = set()
    for name, future in futures.items():
        try:
            future.result(timeout_s)
            created.add(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def existing_topics(admin: AdminClient, kafka: KafkaSettings, timeout_s: float = CONNECT_TIMEOUT_S) -> set[str]:
    """The topics the cluster has; UnreachableError when no broker answers soon."""
    try:
        # A broker that does not answer this soon is not there: say so, don't wait 30 s.
        return set(admin.list_topics(timeout=min(timeout_s, CONNECT_TIMEOUT_S)).topics)
    except KafkaException as exc:
        admin.poll(0)  # hands librdkafka's own reason (refused, unresolved ...) to the log
        raise UnreachableError(
            f"kafka: no broker answered at {kafka.bootstrap_servers} within {CONNECT_TIMEOUT_S:g} s: "
            f"{exc.args[0].str()}"
        ) from None


def ensure_topics(kafka: KafkaSettings, timeout_s: float = TIMEOUT_S, *, apply: bool = False) -> list[TopicStatus]:
    """Create the missing topics with their configs; report every topic with its
    partitions, replication and config drift (set it when ``apply``)."""
    admin = AdminClient(admin_config(kafka, "edge-topics"))
    wanted = topic_configs(kafka)
    names = list(wanted)
    existing = existing_topics(admin, kafka, timeout_s)
    created = _create_missing(admin, kafka, [n for n in names if n not in existing], timeout_s)
    metadata = admin.list_topics(timeout=timeout_s).topics
    described = _describe(admin, names, timeout_s)
    drift = {n: config_drift(wanted[n], d) for n, d in described.items() if isinstance(d, dict)}
    errors = {n: d for n, d in described.items() if isinstance(d, str)}
    applied: set[str] = set()
    to_apply = {n: d for n, d in drift.items() if d}
    if apply and to_apply:
        errors.update(_alter(admin, to_apply, timeout_s))
        for name, now in _describe(admin, [n for n in to_apply if n not in errors], timeout_s).items():
            if isinstance(now, str):
                errors[name] = now
            elif config_drift(wanted[name], now):
                errors[name] = "the broker accepted the new configs but still describes the old ones"
            else:
                applied.add(name)
    report = []
    for name in names:
        topic = metadata.get(name)
        ok = topic is not None and topic.error is None
        partitions = len(topic.partitions) if ok else 0
        replication = len(next(iter(topic.partitions.values())).replicas) if ok and topic.partitions else 0
        report.append(TopicStatus(
            name, partitions, "created" if name in created else "exists", replication,
            tuple(drift.get(name, ())), name in applied, errors.get(name, ""),
        ))
    return report
